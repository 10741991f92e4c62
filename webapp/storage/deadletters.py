"""Dead letters: records MySQL rejected, to inspect, send back through the queue (redrive) or purge.

A redriven record goes back through the queue (lua/redrive.lua) with its
original write id, version and acceptance time: a newer write of the same key
still wins, and when the drain persists it, its receipt moves from `dead` to
`persisted` (or stays `dead`, with the new reason). Entries the drain could not
even read (queue:unreadable) can be listed and purged the same way.
"""
import json
from typing import Any

import redis

from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import CacheUnavailable, QueueUnavailable
from webapp.storage.mysql import Database
from webapp.storage.records import Item, pack
from webapp.storage.redis_client import bounded, guarded, load_script
from webapp.storage.sql import deadletters as sql
from webapp.storage.sql.deadletters import DeadLetter, Filter

BATCH = 500


class DeadLetters:
    """The dead-letter store (MySQL) and the queue's unreadable entries (Redis)."""

    def __init__(self, db: Database, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox) -> None:
        self.db = db
        self.redis = client
        self.settings = settings
        self.timebox = timebox
        self._redrive = load_script(client, "redrive")

    def find(self, selection: Filter, after_id: int | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters matching `selection`, oldest first, keyset-paginated by id."""
        with self.db.connection() as con:
            return sql.page(con, selection, after_id, limit)

    def count(self, selection: Filter) -> int:
        """How many dead letters match (a dry run of redrive or purge)."""
        with self.db.connection() as con:
            return sql.count(con, selection)

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        """One dead letter by id, or None."""
        found = self.find(Filter(ids=(dead_letter_id,)), limit=1)
        return found[0] if found else None

    def redrive(self, selection: Filter) -> int:
        """Send every matching dead letter back through the queue, in batches; return how many.

        Each batch is claimed (locked, skipping rows another redrive holds), queued,
        then deleted, in one transaction: two redrives at once queue each dead
        letter once. A crash after queueing and before the commit queues it again
        on the next redrive, which writes the same version twice: harmless.
        """
        done, after = 0, None
        while True:
            with self.db.connection() as con:
                con.begin()
                batch = sql.page(con, selection, after, BATCH, claim=True)
                if not batch:
                    con.rollback()
                    return done
                args: list[Any] = []
                for letter in batch:
                    record = letter.as_record()
                    blob = pack([record])
                    size = len(blob) * (2 if isinstance(record, Item) else 1)
                    args += [letter.write_id, letter.kind, letter.version, letter.accepted_us or letter.failed_us,
                             blob, size]
                with bounded(QueueUnavailable, self.timebox, self.settings.redis_timeout):
                    self._redrive(keys=[keys.STREAM, keys.DEPTH, keys.BYTES, keys.STATS, keys.REDRIVE_INFLIGHT],
                                  args=args)
                sql.delete(con, [letter.id for letter in batch])
                con.commit()
            done += len(batch)
            after = batch[-1].id

    def purge(self, selection: Filter) -> int:
        """Delete every matching dead letter; return how many."""
        done = 0
        while True:
            batch = self.find(selection, None, BATCH)
            if not batch:
                break
            with self.db.connection() as con:
                done += sql.delete(con, [letter.id for letter in batch])
        if done:
            with bounded(CacheUnavailable, self.timebox, self.settings.redis_timeout):
                self.redis.hincrby(keys.STATS, "dead_letters_purged", done)
        return done

    @guarded(CacheUnavailable)
    def unreadable(self, after: str = "-", limit: int = 100) -> list[dict[str, Any]]:
        """Queue entries the drain could not read, with the reason, oldest first."""
        start = after if after == "-" else f"({after}"
        entries: Any = self.redis.xrange(keys.UNREADABLE, start, "+", count=limit)
        return [{"id": entry_id.decode(), "entry": fields.get(b"entry", b"").decode(),
                 "write_id": fields.get(b"w", b"").decode(errors="replace"),
                 "kind": fields.get(b"k", b"").decode(errors="replace"),
                 "reason": fields.get(b"reason", b"").decode(errors="replace"),
                 "records": json.dumps(fields.get(b"r", b"").decode(errors="replace"))}
                for entry_id, fields in entries]

    @guarded(CacheUnavailable)
    def purge_unreadable(self, ids: list[str] | None = None) -> int:
        """Delete these unreadable entries (all of them with ids None); return how many."""
        if ids is None:
            count = int(self.redis.xlen(keys.UNREADABLE))
            self.redis.delete(keys.UNREADABLE)
            return count
        return int(self.redis.xdel(keys.UNREADABLE, *ids)) if ids else 0
