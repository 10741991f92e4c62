"""SQL of the items table: point reads, keyset pages, the drain's versioned upsert."""
from collections.abc import Sequence
from typing import Any

from webapp.clock import from_datetime, to_datetime
from webapp.storage.records import Item, Queued
from webapp.storage.sql import statement_limit

Row = tuple[int, str | None, int]  # (version, data or None if deleted, updated_us)


def get(con: Any, key: str) -> Row | None:
    """(version, data or None if deleted, updated_us) for key, or None if no row."""
    with con.cursor() as cur:
        cur.execute("SELECT data, version, deleted, updated_at FROM items WHERE k = %s", (key,))
        row = cur.fetchone()
    if row is None:
        return None
    data, version, deleted, updated_at = row
    return int(version), (None if deleted else data), from_datetime(updated_at)


def get_many(con: Any, keys: Sequence[str]) -> dict[str, Row]:
    """{key: (version, data or None if deleted, updated_us)} for those of `keys` that have a row."""
    marks = ",".join(["%s"] * len(keys))
    with con.cursor() as cur:
        cur.execute(f"SELECT k, data, version, deleted, updated_at FROM items WHERE k IN ({marks})", tuple(keys))
        rows = cur.fetchall()
    return {k: (int(version), None if deleted else data, from_datetime(updated_at))
            for k, data, version, deleted, updated_at in rows}


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`, or None.

    Keys with a prefix are selected as the range prefix <= k < prefix_end(prefix)
    rather than with LIKE 'prefix%': MariaDB 10.11's index range for LIKE under
    utf8mb4_nopad_bin stops below U+10000 and silently skips keys such as 'p\U0001f600'.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters: skip the gap
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


ItemRow = tuple[str, str, int, int]


def page(con: Any, prefix: str, after: str | None, limit: int, seconds: float = 0) -> list[ItemRow]:
    """Persisted items with `prefix`, keys after `after`, in key order: (key, data, version, updated_us).

    seconds: the statement's time limit in MySQL itself (see statement_limit).
    """
    where: list[str] = ["deleted = 0"]
    args: list[Any] = []
    if prefix:
        where.append("k >= %s")
        args.append(prefix)
        end = prefix_end(prefix)
        if end is not None:
            where.append("k < %s")
            args.append(end)
    if after is not None:
        where.append("k > %s")
        args.append(after)
    sql = (f"{statement_limit(seconds)}SELECT k, data, version, updated_at FROM items "
           f"WHERE {' AND '.join(where)} ORDER BY k LIMIT %s")
    with con.cursor() as cur:
        cur.execute(sql, (*args, limit))
        return [(k, data, int(v), from_datetime(t)) for k, data, v, t in cur.fetchall()]


PURGE = "DELETE FROM items WHERE tombstone_version < %s ORDER BY tombstone_version LIMIT %s"


def delete_tombstones(con: Any, before_us: int, below_version: int, limit: int) -> int:
    """Delete up to `limit` tombstones older than a time whose version is below `below_version`; return how many.

    A tombstone must outlive every older write of its key that can still arrive
    (queued, or a dead letter that could be redriven): without it, that older
    upsert would bring the item back. By the items_tombstones index: a version is
    its write's acceptance time in microseconds or a little after, so a version
    below both bounds is a tombstone old enough and below the horizon.
    """
    with con.cursor() as cur:
        return int(cur.execute(PURGE, (min(before_us, below_version), limit)))


# A row changes only if the incoming version is newer: a batch applied late,
# twice or out of order never rolls an item back, and a delete (a tombstone
# with its own version) is not undone by an older upsert. `version` is
# assigned last because MySQL evaluates these assignments left to right.
UPSERT = (
    "INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE "
    "data = IF(VALUES(version) > version, VALUES(data), data), "
    "deleted = IF(VALUES(version) > version, VALUES(deleted), deleted), "
    "updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), "
    "version = IF(VALUES(version) > version, VALUES(version), version)"
)


def upsert(cur: Any, queued: Sequence[Queued]) -> None:
    """Apply queued item records (data None: a tombstone) with one multi-row statement."""
    rows = []
    for q in queued:
        item = q.record
        assert isinstance(item, Item)
        rows.append((item.key, item.data, q.version, 1 if item.data is None else 0, to_datetime(q.accepted_us)))
    cur.executemany(UPSERT, rows)
