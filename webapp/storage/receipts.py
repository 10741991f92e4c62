"""Write receipts, wherever they are: in Redis while the write is queued, in MySQL once it is persisted.

The drain archives a write's receipt to MySQL (`writes`, storage/writer.py) in
the transaction that persists it, and only then lets Redis delete it (lua/ack.lua),
so a receipt is always in one place or the other; MySQL keeps it RECEIPT_TTL.
"""
from typing import Any

from webapp.config import Settings
from webapp.storage.errors import RedisUnavailable
from webapp.storage.mysql import Database
from webapp.storage.queue import WriteQueue, accepted_ms
from webapp.storage.sql import writes as writes_sql


class Receipts:
    """Receipts by write id: Redis first, then MySQL (the primary: a replica may not have it yet)."""

    def __init__(self, queue: WriteQueue, db: Database, settings: Settings) -> None:
        self.queue = queue
        self.db = db
        self.settings = settings

    def get(self, write_id: str) -> dict[str, str] | None:
        """A write's receipt as text fields (kind, status, accepted, persisted, dead, accepted_at, ...), or None."""
        try:
            found = self.queue.receipt(write_id)
        except RedisUnavailable:  # a persisted write's receipt can still be answered
            with self.db.connection() as con:
                found = writes_sql.get(con, write_id)
            if found is None:
                raise
            return found
        if found is not None:
            return found
        with self.db.connection() as con:
            return writes_sql.get(con, write_id)

    def expired(self, write_id: str, now_ms: int) -> bool:
        """True if a receipt not found was accepted longer ago than RECEIPT_TTL (its id says when)."""
        accepted = accepted_ms(write_id)
        return accepted is not None and now_ms - accepted > self.settings.receipt_ttl * 1000

    def stats(self) -> dict[str, Any]:
        """Receipts in MySQL (an estimate from the table's statistics), for make status and /metrics."""
        with self.db.connection() as con, con.cursor() as cur:
            cur.execute("SELECT TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'writes'")
            found = cur.fetchone()
        rows, size = found if found else (0, 0)
        return {"rows": int(rows or 0), "bytes": int(size or 0)}
