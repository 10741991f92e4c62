"""Drain slot leases, heartbeats and the "worker is stopping" flag, all in Redis.

At most DRAIN_CONCURRENCY drain tasks run at once across every worker host:
each holds a slot lease (lua/slots.lua) that it renews between batches. A
worker killed with SIGKILL stops renewing; its slot frees when the lease runs
out. The script may write when Redis is full (allow-oom), and none of its keys
has a TTL that Redis could evict them by, so a full Redis never stops the drain
that would empty it.
"""
import os
import socket
import time
from pathlib import Path
from typing import Any

import redis

from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import RedisUnavailable
from webapp.storage.redis_client import guarded, load_script

QUEUED_LEASE = 60.0  # a slot reserved for a task not yet started
RUNNING_LEASE = 20.0  # renewed between batches while a task runs
STOPPING_S = 300


def worker_name(pid: int | None = None) -> str:
    """host:pid:start of a process (this one's by default): unique per process, across restarts.

    The start time (clock ticks since boot, from /proc) tells apart two processes
    that got the same pid, as a container restarted with the same pid does.
    """
    pid = pid or os.getpid()
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "0"
    return f"{socket.gethostname()}:{pid}:{start}"


class Leases:
    """Slot leases and liveness of the drain, kept in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox) -> None:
        self.redis = client
        self.settings = settings
        self.timebox = timebox
        self._script = load_script(client, "slots")

    @guarded(RedisUnavailable)
    def _call(self, *args: Any) -> Any:
        return self._script(keys=[keys.SLOTS, keys.ALIVE], args=list(args))

    def reserve(self, count: int, token: str, lease_s: float) -> list[int]:
        """Reserve every free slot of `count` for `token`; return the slot numbers."""
        return [int(n) for n in self._call("reserve", count, token, int(lease_s * 1000))]

    def renew(self, slot: int, token: str, lease_s: float) -> bool:
        """Extend a slot lease; False if the token no longer holds it."""
        return bool(self._call("renew", slot, token, int(lease_s * 1000)))

    def heartbeat(self, consumer: str) -> None:
        """Record that this drain consumer is alive (for /readyz)."""
        now_ms = int(time.time() * 1000)
        self._call("beat", consumer, now_ms, now_ms - 3600_000)

    def mark_stopping(self, worker: str) -> None:
        """Flag a Celery worker (worker_name()) as shutting down, for STOPPING_S."""
        self._call("stop", keys.STOPPING, worker, STOPPING_S * 1000)

    def trouble(self, error: str) -> None:
        """Report that a batch waits for MySQL to take it (counted; shown in /readyz and /metrics)."""
        self._call("trouble", keys.TROUBLE, keys.STATS, error[:500], int(time.time() * 1000))

    def clear_trouble(self) -> None:
        """A batch went through after trouble."""
        self._call("clear", keys.TROUBLE)

    def publish_pace(self, records_per_s: float) -> None:
        """Tell the web how fast the drains persist (backpressure's Retry-After), for the next 10 s."""
        self._call("pace", keys.DRAIN_RATE, round(records_per_s, 1))

    def stopping(self, worker: str) -> bool:
        """True if that worker is shutting down."""
        return bool(self._call("stopping", keys.STOPPING, worker))
