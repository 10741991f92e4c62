"""SQL of the writes table: receipts of persisted writes, and the Idempotency-Keys they claimed.

The drain writes a write's row when it persists the write, before the Stream
entry is acknowledged; Redis then lets the receipt go. A write with an
Idempotency-Key first claims the key (`idem_key`, unique): a second write with
the same key, accepted after Redis let the key go, finds the claim taken and is
stored as a duplicate of the first, none of its records written. Every
statement can run twice (a redelivered batch) and leaves the same rows.
"""
from collections.abc import Sequence
from typing import Any

from webapp.clock import from_datetime, to_datetime

COLUMNS = "write_id, kind, status, accepted, persisted, dead, accepted_at, persisted_at, duplicate_of"

# ON DUPLICATE KEY: either the write's own row (a redelivered batch) or another
# write's claim on the same idem_key; both leave the existing row as it is.
CLAIM = (
    "INSERT INTO writes (write_id, kind, status, accepted, accepted_at, idem_key, request_hash) "
    "VALUES (%s, %s, 'queued', %s, %s, %s, %s) ON DUPLICATE KEY UPDATE write_id = write_id"
)
# The final receipt. A duplicate's row has no idem_key (the key is its original's).
ARCHIVE = (
    "INSERT INTO writes (write_id, kind, status, accepted, persisted, dead, accepted_at, persisted_at, idem_key, "
    "request_hash, duplicate_of) VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE status = VALUES(status), persisted = VALUES(persisted), dead = VALUES(dead), "
    "persisted_at = VALUES(persisted_at), duplicate_of = VALUES(duplicate_of)"
)
# A redriven record went through again: its write's counts from what is still dead.
# (SET runs left to right: `persisted` sees the new `dead`.)
RECOUNT = (
    "UPDATE writes w SET dead = (SELECT COUNT(*) FROM dead_letters d WHERE d.write_id = w.write_id), "
    "persisted = w.accepted - w.dead, status = IF(w.dead > 0, 'dead', 'persisted'), "
    "persisted_at = UTC_TIMESTAMP(6) WHERE w.write_id IN ({})"
)

Claim = tuple[str, str, int, Any, str, str]  # write_id, kind, accepted, accepted_at, idem_key, request_hash
Archived = tuple[str, str, str, int, int, int, Any, str | None, str | None, str | None]


def claim(cur: Any, claims: Sequence[Claim]) -> dict[str, tuple[str, str]]:
    """Claim Idempotency-Keys for writes; return {idem_key: (owner write_id, owner's request hash)}.

    In key order, so that two drains claiming some of the same keys wait for each
    other instead of deadlocking; read back with a locking read, which sees the
    latest committed claim whatever the transaction's snapshot.
    """
    cur.executemany(CLAIM, sorted(claims, key=lambda c: c[4]))
    keys = sorted({c[4] for c in claims})
    cur.execute(f"SELECT idem_key, write_id, request_hash FROM writes WHERE idem_key IN "
                f"({', '.join(['%s'] * len(keys))}) LOCK IN SHARE MODE", keys)
    return {idem: (write_id, request_hash) for idem, write_id, request_hash in cur.fetchall()}


def archive(cur: Any, rows: Sequence[Archived]) -> None:
    """Store final receipts."""
    cur.executemany(ARCHIVE, rows)


def recount(cur: Any, write_ids: Sequence[str]) -> None:
    """Bring the receipts of writes whose dead letters were redriven up to date."""
    cur.execute(RECOUNT.format(", ".join(["%s"] * len(write_ids))), list(write_ids))


def get(con: Any, write_id: str) -> dict[str, str] | None:
    """A persisted write's receipt, in the same text form as a queued one in Redis, or None."""
    with con.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM writes WHERE write_id = %s", (write_id,))
        found = cur.fetchone()
    if found is None:
        return None
    _, kind, status, accepted, persisted, dead, accepted_at, persisted_at, duplicate_of = found
    receipt = {"kind": kind, "status": status, "accepted": str(accepted), "persisted": str(persisted),
               "dead": str(dead), "accepted_at": str(from_datetime(accepted_at))}
    if persisted_at is not None:
        receipt["persisted_at"] = str(from_datetime(persisted_at))
    if duplicate_of:
        receipt["duplicate_of"] = duplicate_of
    return receipt


PURGE = "DELETE FROM writes WHERE write_id < %s ORDER BY write_id LIMIT %s"


def delete_before(con: Any, write_id_bound: str, limit: int) -> int:
    """Delete up to `limit` receipts whose ids sort below a bound (ids begin with their time); return how many."""
    with con.cursor() as cur:
        return int(cur.execute(PURGE, (write_id_bound, limit)))


def when(us: int) -> Any:
    """A time in microseconds as the table stores it."""
    return to_datetime(us)
