"""The Redis client of a process, its Lua scripts, and Redis failures as storage errors.

Every call is bounded: a socket timeout of REDIS_TIMEOUT, and in web workers a
bounded wait for a pooled connection. A stale pooled connection after a Redis
restart fails at once and is retried once; a timeout is not retried, so a
caller waits at most REDIS_TIMEOUT. The web passes its own client class (the
coalescer in webapp/server/coalesce.py); everything here works with either.
"""
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from webapp.config import Settings
from webapp.storage.bounds import Timebox
from webapp.storage.errors import RedisUnavailable

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).parent / "lua"


def connect(settings: Settings, *, blocking: bool, pool_size: int | None = None,
            client_class: type[redis.Redis] = redis.Redis) -> redis.Redis:
    """A Redis client for this process (its pool notices forks and rebuilds).

    blocking: wait (up to REDIS_TIMEOUT) for a free pooled connection instead of failing.
    """
    kwargs = dict(
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        max_connections=pool_size or settings.redis_pool_size,
    )
    pool: redis.ConnectionPool
    if blocking:
        pool = redis.BlockingConnectionPool.from_url(settings.redis_url, timeout=settings.redis_timeout, **kwargs)
    else:
        pool = redis.ConnectionPool.from_url(settings.redis_url, **kwargs)
    return client_class(connection_pool=pool)


def load_script(client: redis.Redis, name: str) -> Script:
    """Register lua/<name>.lua on client (EVALSHA; loaded again after NOSCRIPT)."""
    return client.register_script((LUA_DIR / f"{name}.lua").read_text())


# Error replies that mean "not now": the server is full, loading, failing to write its
# AOF, a replica that lost its primary or refuses writes, or busy with a script.
# redis-py strips the first word from some of them (OOM, LOADING, MASTERDOWN,
# READONLY) into the exception class and status_code, so all three are checked.
UNAVAILABLE_REPLIES = ("OOM", "LOADING", "MASTERDOWN", "MISCONF", "BUSY", "READONLY", "NOREPLICAS", "TRYAGAIN")
_UNAVAILABLE_CLASSES = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                        redis.exceptions.OutOfMemoryError, redis.exceptions.BusyLoadingError,
                        redis.exceptions.MasterDownError, redis.exceptions.TryAgainError)


def is_unavailable(err: Exception) -> bool:
    """True if a Redis error means the server cannot take the command now (down, slow, full, read-only)."""
    if isinstance(err, _UNAVAILABLE_CLASSES):
        return True
    if not isinstance(err, redis.ResponseError):
        return False
    code = getattr(err, "status_code", None) or str(err).split(" ", 1)[0]
    return code in UNAVAILABLE_REPLIES  # the whole first word: BUSYGROUP is not BUSY


@contextmanager
def bounded(error: type[RedisUnavailable], timebox: Timebox, seconds: float) -> Iterator[None]:
    """At most `seconds`; Redis down, hung or unable to answer now raises `error` (a storage error)."""
    try:
        with timebox(seconds):
            yield
    except TimeoutError:
        raise error(f"no answer from Redis within {seconds:g}s") from None
    except redis.RedisError as err:
        if not is_unavailable(err):
            raise
        log.warning("redis unavailable: %s", err)
        failure = error(str(err))
        failure.full = isinstance(err, redis.exceptions.OutOfMemoryError)
        raise failure from err
