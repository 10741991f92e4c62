"""SQL of the events table: append-only inserts (redelivery-safe) and keyset pages."""
from collections.abc import Sequence
from typing import Any

from webapp.clock import from_datetime, to_datetime
from webapp.storage.records import Event, Queued
from webapp.storage.sql import statement_limit

# `seq` is the version given at acceptance: a redelivered record hits the
# primary key, a repeated event_id hits its unique key, and either way the row
# stays as it was (the first stored wins). ON DUPLICATE KEY UPDATE, not INSERT
# IGNORE: IGNORE would also turn real data errors into silent warnings.
INSERT = (
    "INSERT INTO events (seq, event_id, name, level, occurred_at, received_at, data) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE seq = seq"
)

COLUMNS = "seq, event_id, name, level, occurred_at, received_at, data"


def insert(cur: Any, queued: Sequence[Queued]) -> None:
    """Insert queued events (their version is `seq`), in seq order."""
    rows = []
    for q in sorted(queued, key=lambda q: q.version):
        e = q.record
        assert isinstance(e, Event)
        rows.append((q.version, e.event_id, e.name, e.level, to_datetime(e.occurred_us or q.accepted_us),
                     to_datetime(q.accepted_us), e.data))
    cur.executemany(INSERT, rows)


PURGE = "DELETE FROM events WHERE seq < %s ORDER BY seq LIMIT %s"


def delete_received_before(con: Any, before_us: int, limit: int) -> int:
    """Delete up to `limit` of the oldest events received before a time (retention); return how many.

    By primary key: an event's `seq` is the version it was given when it was
    accepted, Redis's clock in microseconds or a little after it (never before),
    so `seq < before_us` holds only events received before then: a range of the
    primary key, never a scan of the table.
    """
    with con.cursor() as cur:
        return int(cur.execute(PURGE, (before_us, limit)))


EventRow = tuple[int, str | None, str, str, int, int, str | None]


def page(con: Any, name: str | None, level: str | None, since_us: int | None, until_us: int | None,
         before: tuple[int, int] | None, limit: int, seconds: float = 0) -> list[EventRow]:
    """Events newest first (occurred_at, then arrival), filtered; `before` is (occurred_us, seq).

    seconds: the statement's time limit in MySQL itself (sql.statement_limit).
    """
    where: list[str] = []
    args: list[Any] = []
    if name is not None:
        where.append("name = %s")
        args.append(name)
    if level is not None:
        where.append("level = %s")
        args.append(level)
    if since_us is not None:
        where.append("occurred_at >= %s")
        args.append(to_datetime(since_us))
    if until_us is not None:
        where.append("occurred_at < %s")
        args.append(to_datetime(until_us))
    if before is not None:
        t = to_datetime(before[0])
        where.append("(occurred_at < %s OR (occurred_at = %s AND seq < %s))")
        args += [t, t, before[1]]
    sql = (f"{statement_limit(seconds)}SELECT {COLUMNS} FROM events "
           f"{'WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY occurred_at DESC, seq DESC LIMIT %s")
    with con.cursor() as cur:
        cur.execute(sql, (*args, limit))
        return [(int(seq), event_id, n, lvl, from_datetime(o), from_datetime(r), data)
                for seq, event_id, n, lvl, o, r, data in cur.fetchall()]
