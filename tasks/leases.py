"""Drain slot leases, heartbeats and the "worker is stopping" flag, all in Redis.

At most DRAIN_CONCURRENCY drain tasks run at once across every worker host:
each holds a slot lease (lua/slots.lua) that it renews between batches. A
worker killed with SIGKILL stops renewing; its slot frees when the lease runs out.
"""
import os
import socket
import time

import redis

from webapp.storage import keys
from webapp.storage.redis_client import load_script

QUEUED_LEASE = 60.0  # a slot reserved for a task not yet started
RUNNING_LEASE = 20.0  # renewed between batches while a task runs
STOPPING_TTL = 300


def worker_name(pid: int | None = None) -> str:
    """host:pid of a Celery worker's main process (this one's by default)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


class Leases:
    """Slot leases and liveness of the drain, kept in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._slots = load_script(client, "slots")

    def reserve(self, count: int, token: str, lease_s: float) -> list[int]:
        """Reserve every free slot of `count` for `token`; return the slot numbers."""
        return [int(n) for n in self._slots(keys=[keys.SLOTS], args=["reserve", count, token, int(lease_s * 1000)])]

    def renew(self, slot: int, token: str, lease_s: float) -> bool:
        """Extend a slot lease; False if the token no longer holds it."""
        return bool(self._slots(keys=[keys.SLOTS], args=["renew", slot, token, int(lease_s * 1000)]))

    def heartbeat(self, consumer: str) -> None:
        """Record that this drain consumer is alive (for /readyz)."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(keys.ALIVE, {consumer: now_ms})
        pipe.zremrangebyscore(keys.ALIVE, "-inf", now_ms - 3600_000)
        pipe.execute()

    def mark_stopping(self, worker: str) -> None:
        """Flag a Celery worker (worker_name()) as shutting down."""
        self.redis.set(keys.stopping(worker), 1, ex=STOPPING_TTL)

    def stopping(self, worker: str) -> bool:
        """True if that worker is shutting down."""
        return bool(self.redis.exists(keys.stopping(worker)))
