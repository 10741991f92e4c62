"""The queue's housekeeping in Redis: idempotency keys past their time or budget, the retention lease.

Idempotency keys carry no TTL, so Redis never evicts them early; lua/accept.lua
records when each is due in the sorted set `expiry` (IDEMPOTENCY_CACHE_S after
acceptance), and lua/expire.lua deletes what is due by Redis's own clock, and
the oldest past the budget (IDEMPOTENCY_CACHE_BYTES; 0: a quarter of Redis's
maxmemory). The keepers of every worker host run this (tasks/keeper.py); one
lease lets one of them start the retention task each minute.
"""
import time

import redis

from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import RedisUnavailable
from webapp.storage.queue import IDEMPOTENCY_KEY_BYTES
from webapp.storage.redis_client import guarded, load_script

EXPIRE_BATCH = 500  # receipts and idempotency keys deleted per call
EXPIRE_ROUNDS = 40  # calls per round at most: up to 20,000 a second per worker host, far above any write rate
NO_MAXMEMORY_BUDGET = 256 * 1024**2  # the idempotency keys' budget when Redis has no maxmemory
BUDGET_CHECK_S = 60.0  # how often maxmemory is read again


class Housekeeping:
    """Deleting what is due, and the lease of the one retention run a minute."""

    def __init__(self, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox) -> None:
        self.redis = client
        self.settings = settings
        self.timebox = timebox
        self._expire = load_script(client, "expire")
        self._budget: tuple[float, int] = (-BUDGET_CHECK_S, 0)  # (when read, bytes)

    @guarded(RedisUnavailable)
    def expire_due(self) -> int:
        """Delete idempotency keys past their time, or past the budget (until none is left); return how many."""
        most_keys = self.budget_bytes() // IDEMPOTENCY_KEY_BYTES
        total = 0
        for _ in range(EXPIRE_ROUNDS):
            deleted = int(self._expire(keys=[keys.EXPIRY], args=[EXPIRE_BATCH, most_keys, keys.IDEMPOTENCY]))
            total += deleted
            if deleted < EXPIRE_BATCH:
                break
        return total

    def budget_bytes(self) -> int:
        """What the idempotency keys may take of Redis: IDEMPOTENCY_CACHE_BYTES, or a quarter of maxmemory."""
        if self.settings.idempotency_cache_bytes:
            return self.settings.idempotency_cache_bytes
        read_at, budget = self._budget
        if time.monotonic() - read_at >= BUDGET_CHECK_S:
            limit = int(self.redis.info("memory").get("maxmemory", 0))
            budget = limit // 4 if limit else NO_MAXMEMORY_BUDGET
            self._budget = (time.monotonic(), budget)
        return budget

    @guarded(RedisUnavailable)
    def take_retention_lease(self, seconds: int) -> bool:
        """True for the one caller that may start the retention task in the next `seconds`."""
        return bool(self.redis.set(keys.RETENTION_LEASE, "1", nx=True, ex=seconds))
