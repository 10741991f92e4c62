"""The durable write queue in Redis: a Stream of accepted writes, drained by Celery.

Layout (all keys start with spillway:):
  queue            the Stream; one entry per accepted write, carrying its records
  queue:depth      queued records (not entries), for backpressure and /readyz
  drain:alive      sorted set: drain consumer -> last heartbeat (ms)
"""
import time

from webapp.cache import PREFIX

STREAM = PREFIX + "queue"
GROUP = "drain"
DEPTH = PREFIX + "queue:depth"
ALIVE = PREFIX + "drain:alive"
ALIVE_WINDOW_MS = 30_000  # a drain that has not beaten for this long counts as dead


class WriteQueue:
    """Append writes to the queue (web) and report on it."""

    def __init__(self, client, settings):
        self.redis = client
        self.settings = settings

    def stats(self):
        """{"depth": queued records, "oldest_age_s": age of the oldest entry, "alive": drains}."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(DEPTH)
        pipe.xrange(STREAM, count=1)
        pipe.zcount(ALIVE, now_ms - ALIVE_WINDOW_MS, "+inf")
        depth, first, alive = pipe.execute()
        oldest = 0.0
        if first:
            oldest = max(0.0, (now_ms - int(first[0][0].split(b"-")[0])) / 1000)
        return {"depth": int(depth or 0), "oldest_age_s": round(oldest, 3), "alive": int(alive)}
