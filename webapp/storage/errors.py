"""Storage errors: what went wrong below the API, named for what failed; no HTTP in them.

One root, StorageError. Unavailable means "a server cannot take this now, retry":
the API answers 503 with Retry-After, the drain keeps its batch queued and
retries. Refused means the queue said no to a write on purpose; nothing of it
was queued. webapp/api/responses.py maps each class to the API's error codes.
"""
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # queue.py imports this module
    from webapp.storage.queue import RateLeft


class StorageError(Exception):
    """Root of every error webapp.storage raises; retry_after in seconds when known."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.retry_after = retry_after


class Unavailable(StorageError):
    """A server cannot take the request now; retry later."""


class DatabaseUnavailable(Unavailable):
    """MySQL is down, hung, or refusing us."""


class WriteDeferred(Unavailable):
    """MySQL could not take a batch for a reason of its own (a server error); it stays queued, retried later."""


class PoolTimeout(Unavailable):
    """No pooled MySQL connection came free in time."""


class RedisUnavailable(Unavailable):
    """Redis is down, hung, or cannot take the command now; full: it is out of memory (OOM)."""

    full = False


class QueueUnavailable(RedisUnavailable):
    """The write queue could not take the write; nothing was queued."""


class CacheUnavailable(RedisUnavailable):
    """The cache could not be read."""


class ReplicationTimeout(StorageError):
    """The write reached the primary but not WRITE_MIN_REPLICAS replicas in time: it may still land."""


class Refused(StorageError):
    """The queue refused the write on purpose; nothing was queued."""


class IdempotencyKeyReused(Refused):
    """The Idempotency-Key was used before with a different request."""


class RateLimited(Refused):
    """The API key is past its write rate; `rate`: the key's rate left, when known."""

    def __init__(self, message: str = "", retry_after: float | None = None, rate: "RateLeft | None" = None) -> None:
        super().__init__(message, retry_after)
        self.rate = rate


class Backpressure(Refused):
    """The queue is past its high-water mark."""
