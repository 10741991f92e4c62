"""SQL of the dead_letters table: records MySQL rejected, with the reason; listed, redriven, purged."""
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webapp.clock import from_datetime, to_datetime
from webapp.storage.records import Event, Item, Queued, Record, kind_of

# A record that dies again after a redrive keeps its row's id and gets the new reason.
INSERT = (
    "INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at, accepted_at) "
    "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s) "
    "ON DUPLICATE KEY UPDATE reason = VALUES(reason), failed_at = VALUES(failed_at)"
)
COLUMNS = "id, version, write_id, kind, record, reason, failed_at, accepted_at"
Row = tuple[int, str, str, bytes, str, Any]


def row(queued: Queued, reason: str) -> Row:
    """The dead_letters row of a rejected record: its kind, its fields as a JSON object, and the reason."""
    record = json.dumps(queued.record._asdict(), ensure_ascii=False).encode()
    return (queued.version, queued.write_id, kind_of([queued.record]), record, reason,
            to_datetime(queued.accepted_us))


def insert(cur: Any, rows: Sequence[Row]) -> None:
    """Store rejected records; a repeat (redelivery, or a redrive that failed again) is kept once."""
    cur.executemany(INSERT, rows)


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered record."""

    id: int
    version: int
    write_id: str
    kind: str
    record: dict[str, Any]
    reason: str
    failed_us: int
    accepted_us: int | None

    def as_record(self) -> Record:
        """The record as it was queued."""
        return Item(**self.record) if self.kind == "items" else Event(**self.record)

    def as_dict(self) -> dict[str, Any]:
        """For the API and the command line."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Filter:
    """Which dead letters: by ids, write, kind, reason text and failure time (all optional, all must match)."""

    ids: tuple[int, ...] = ()
    write_id: str | None = None
    kind: str | None = None
    reason: str | None = None  # a substring of the reason
    since_us: int | None = None  # failed at or after
    until_us: int | None = None  # failed before

    @classmethod
    def from_dict(cls, selection: dict[str, Any]) -> "Filter":
        """A Filter from its fields as JSON-able values (ids a list), as the API hands them to the redrive task."""
        return cls(**{**selection, "ids": tuple(selection.get("ids") or ())})

    def is_empty(self) -> bool:
        """True if it selects everything."""
        return self == Filter()

    def where(self) -> tuple[str, list[Any]]:
        """A WHERE clause (or '') and its arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.ids:
            clauses.append(f"id IN ({', '.join(['%s'] * len(self.ids))})")
            args += list(self.ids)
        for column, value in (("write_id", self.write_id), ("kind", self.kind)):
            if value is not None:
                clauses.append(f"{column} = %s")
                args.append(value)
        if self.reason:
            clauses.append("reason LIKE %s")
            args.append("%" + self.reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if self.since_us is not None:
            clauses.append("failed_at >= %s")
            args.append(to_datetime(self.since_us))
        if self.until_us is not None:
            clauses.append("failed_at < %s")
            args.append(to_datetime(self.until_us))
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _dead_letter(r: tuple[Any, ...]) -> DeadLetter:
    record = r[4].decode() if isinstance(r[4], bytes) else r[4]
    return DeadLetter(int(r[0]), int(r[1]), r[2], r[3], json.loads(record), r[5], from_datetime(r[6]),
                      from_datetime(r[7]) if r[7] else None)


def page(con: Any, selection: Filter, after_id: int | None, limit: int, claim: bool = False) -> list[DeadLetter]:
    """Dead letters matching `selection`, oldest first, with ids after `after_id`.

    claim: lock them for this transaction, skipping those another transaction holds
    (a redrive running at the same time): each dead letter is redriven once.
    """
    where, args = selection.where()
    if after_id is not None:
        where = f"{where} AND id > %s" if where else "WHERE id > %s"
        args.append(after_id)
    lock = " FOR UPDATE SKIP LOCKED" if claim else ""
    with con.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM dead_letters {where} ORDER BY id LIMIT %s{lock}", (*args, limit))
        return [_dead_letter(r) for r in cur.fetchall()]


def count(con: Any, selection: Filter) -> int:
    """How many dead letters match."""
    where, args = selection.where()
    with con.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM dead_letters {where}", args)
        return int(cur.fetchone()[0])


def delete(con: Any, ids: Sequence[int]) -> int:
    """Delete these dead letters; return how many were deleted."""
    if not ids:
        return 0
    with con.cursor() as cur:
        return int(cur.execute(f"DELETE FROM dead_letters WHERE id IN ({', '.join(['%s'] * len(ids))})", list(ids)))


def delete_versions(cur: Any, versions: Sequence[int]) -> None:
    """Delete the dead letters of records that were redriven and are now written."""
    cur.execute(f"DELETE FROM dead_letters WHERE version IN ({', '.join(['%s'] * len(versions))})", list(versions))


PURGE = "DELETE FROM dead_letters WHERE failed_at < %s ORDER BY failed_at LIMIT %s"


def delete_failed_before(con: Any, before_us: int, limit: int) -> int:
    """Delete up to `limit` dead letters that failed before a time (retention; by dead_letters_failed)."""
    with con.cursor() as cur:
        return int(cur.execute(PURGE, (to_datetime(before_us), limit)))


def lowest_version(con: Any) -> int | None:
    """The smallest version among dead letters (a redrive could still bring it back), or None."""
    with con.cursor() as cur:
        cur.execute("SELECT MIN(version) FROM dead_letters")
        value = cur.fetchone()[0]
    return int(value) if value is not None else None


def for_write(con: Any, write_id: str) -> list[tuple[int, str, str]]:
    """The dead letters of one write: [(version, record JSON, reason)]."""
    with con.cursor() as cur:
        cur.execute("SELECT version, record, reason FROM dead_letters WHERE write_id = %s ORDER BY version",
                    (write_id,))
        return [(int(v), r.decode() if isinstance(r, bytes) else r, reason) for v, r, reason in cur.fetchall()]
