"""Retention in storage: receipts, events, tombstones and dead letters past their time, purged in small batches.

Each purge walks an index in order (receipts and events by primary key,
tombstones by items_tombstones, dead letters by dead_letters_failed; EXPLAIN
of each is checked in tests/e2e/test_retention.py), 1,000 rows a statement,
each its own short transaction at READ COMMITTED, so it takes no gap locks and
the drain's writes never wait behind it. A tombstone is purged only below the
horizon: the lowest version an older write of its key could still arrive with
(queued, or a dead letter that could be redriven), so that no older upsert can
bring the item back.
"""
import time
from collections.abc import Callable
from typing import Any

import redis

from webapp.clock import now_us
from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import RedisUnavailable
from webapp.storage.mysql import Database
from webapp.storage.redis_client import guarded
from webapp.storage.sql import deadletters
from webapp.storage.sql import events as events_sql
from webapp.storage.sql import items as items_sql
from webapp.storage.sql import writes as writes_sql
from webapp.storage.stream import Stream

BATCH = 1000
PAUSE_S = 0.01  # between batches: the drain's transactions go first
CLOCK_MARGIN_US = 60_000_000  # a clock that differs from Redis's by up to a minute


class Retention:
    """Purging old rows in batches, and the tombstone horizon."""

    def __init__(self, db: Database, client: redis.Redis, stream: Stream, settings: Settings,
                 timebox: Timebox = no_timebox) -> None:
        self.db = db
        self.redis = client
        self.stream = stream
        self.settings = settings
        self.timebox = timebox

    def _purge(self, delete: Callable[[Any], int], deadline: float) -> int:
        """Run `delete(con)` (one batch) until it deletes less than a batch or time is up; return the total."""
        total = 0
        while time.monotonic() < deadline:
            with self.db.connection() as con:
                with con.cursor() as cur:  # the next statement only: no gap locks for the drain to wait on
                    cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                deleted = delete(con)
            total += deleted
            if deleted < BATCH:
                break
            time.sleep(PAUSE_S)
        return total

    def receipts(self, accepted_before_ms: int, deadline: float) -> int:
        """Purge receipts (and so the Idempotency-Keys they hold) of writes accepted before a time."""
        bound = f"w_{accepted_before_ms:011x}"  # write ids begin with their acceptance time
        return self._purge(lambda con: writes_sql.delete_before(con, bound, BATCH), deadline)

    def events(self, received_before_us: int, deadline: float) -> int:
        """Purge events received before a time; return how many."""
        return self._purge(lambda con: events_sql.delete_received_before(con, received_before_us, BATCH), deadline)

    def dead_letters(self, failed_before_us: int, deadline: float) -> int:
        """Purge dead letters that failed before a time; return how many."""
        return self._purge(lambda con: deadletters.delete_failed_before(con, failed_before_us, BATCH), deadline)

    def tombstones(self, deleted_before_us: int, deadline: float) -> tuple[int, int]:
        """Purge tombstones older than a time and below the horizon; return (how many, the horizon)."""
        horizon = self.horizon()
        return self._purge(lambda con: items_sql.delete_tombstones(con, deleted_before_us, horizon, BATCH),
                           deadline), horizon

    def horizon(self) -> int:
        """The lowest version an older write of some key could still arrive with.

        MySQL is read first, then Redis: a dead letter redriven in between is then
        in the queue when Redis is read, never in neither place. A new write gets a
        version past the last one given and never behind Redis's clock
        (lua/accept.lua); queued writes and dead letters keep theirs.
        """
        with self.db.connection() as con:
            dead = deadletters.lowest_version(con)
        candidates = [self._next_version(), *([dead] if dead is not None else [])]
        queued = self.stream.oldest_version()
        if queued is not None:
            candidates.append(queued)
        return min(candidates)

    @guarded(RedisUnavailable)
    def _next_version(self) -> int:
        return max(int(self.redis.get(keys.VERSION) or 0) + 1, now_us() - CLOCK_MARGIN_US)

    @guarded(RedisUnavailable)
    def count(self, done: dict[str, int]) -> None:
        """Add one run's purges to the counters /metrics shows."""
        self.redis.hincrby(keys.STATS, "retention_runs", 1)
        for name, purged in done.items():
            if purged:
                self.redis.hincrby(keys.STATS, f"retention_purged_{name}", purged)
