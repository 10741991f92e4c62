"""The queue's housekeeping in Redis: receipts and idempotency keys whose time is up, the retention lease.

Receipts and idempotency keys carry no TTL, so Redis never evicts them early;
lua/accept.lua records when each is due in the sorted set `expiry`, and
lua/expire.lua deletes what is due by Redis's own clock. The keepers of every
worker host run this (tasks/keeper.py); one lease lets one of them start the
retention task each minute.
"""
import redis

from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import RedisUnavailable
from webapp.storage.redis_client import guarded, load_script

EXPIRE_BATCH = 500  # receipts and idempotency keys deleted per call
EXPIRE_ROUNDS = 40  # calls per round at most: up to 20,000 a second per worker host, far above any write rate


class Housekeeping:
    """Deleting what is due, and the lease of the one retention run a minute."""

    def __init__(self, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox) -> None:
        self.redis = client
        self.settings = settings
        self.timebox = timebox
        self._expire = load_script(client, "expire")

    @guarded(RedisUnavailable)
    def expire_due(self) -> int:
        """Delete the receipts and idempotency keys whose time is up (until none is left); return how many."""
        total = 0
        for _ in range(EXPIRE_ROUNDS):
            deleted = int(self._expire(keys=[keys.EXPIRY], args=[EXPIRE_BATCH]))
            total += deleted
            if deleted < EXPIRE_BATCH:
                break
        return total

    @guarded(RedisUnavailable)
    def take_retention_lease(self, seconds: int) -> bool:
        """True for the one caller that may start the retention task in the next `seconds`."""
        return bool(self.redis.set(keys.RETENTION_LEASE, "1", nx=True, ex=seconds))
