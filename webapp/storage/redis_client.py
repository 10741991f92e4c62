"""The Redis client of a process, its Lua scripts, and Redis failures as storage errors.

Every call is bounded: a socket timeout of REDIS_TIMEOUT, and in web workers a
bounded wait for a pooled connection. A stale pooled connection after a Redis
restart fails at once and is retried once; a timeout is not retried, so a
caller waits at most REDIS_TIMEOUT. The web passes its own client class (the
coalescer in webapp/server/coalesce.py); everything here works with either.

redis-py's Sentinel classes are untyped: their calls here say so (no-untyped-call).

With Sentinel (REDIS_SENTINELS, or a redis+sentinel:// URL) every new
connection asks the Sentinels where the primary is, so a failover is followed
without a restart; during the election calls fail fast (MasterNotFoundError,
a ConnectionError: 503 with Retry-After).
"""
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from webapp.config import RedisTarget, Settings
from webapp.storage.bounds import Timebox
from webapp.storage.errors import RedisUnavailable

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).parent / "lua"


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary that asks Sentinel again on every reconnect, retries included.

    redis-py's own reconnects inside a retry skip the Sentinel lookup and go back to
    the old primary (redis-py issue 3874): after a failover a retried command failed.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]  # through Sentinel
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A bounded pool whose waiters block (up to its timeout), with the primary found through Sentinel."""


def _pool_kwargs(settings: Settings, pool_size: int | None) -> dict[str, Any]:
    return dict(
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_keepalive=True,
        # No health-check PING: a Redis that cannot write its AOF refuses PING too (MISCONF),
        # and a connection whose check fails fails every command, reads included. A dead
        # connection is found by keepalive, and the one retry below reconnects.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        max_connections=pool_size or settings.redis_pool_size,
    )


def sentinel(settings: Settings, target: RedisTarget) -> Sentinel:
    """The Sentinels of `target`: short timeouts and no retries of their own, so an election fails fast."""
    quick = min(0.5, settings.redis_timeout)
    return Sentinel(list(target.sentinels), sentinel_kwargs={  # type: ignore[no-untyped-call]
        "password": target.sentinel_password or None, "socket_timeout": quick, "socket_connect_timeout": quick,
        "retry": Retry(NoBackoff(), 0)})


def connect(settings: Settings, *, blocking: bool, pool_size: int | None = None,
            client_class: type[redis.Redis] = redis.Redis, target: RedisTarget | None = None) -> redis.Redis:
    """A Redis client for this process (its pool notices forks and rebuilds).

    blocking: wait (up to REDIS_TIMEOUT) for a free pooled connection instead of failing.
    target: another Redis than the write queue's (Celery's broker, for the start-up check).
    """
    kwargs = _pool_kwargs(settings, pool_size)
    target = target or settings.redis
    pool: redis.ConnectionPool
    if target.is_sentinel:
        kwargs.update(password=target.password or None, db=target.db, connection_class=PrimaryConnection)
        manager = sentinel(settings, target)
        if blocking:
            pool = BlockingSentinelPool(  # type: ignore[no-untyped-call]
                target.service, manager, timeout=settings.redis_timeout, **kwargs)
        else:
            pool = SentinelConnectionPool(target.service, manager, **kwargs)  # type: ignore[no-untyped-call]
    elif blocking:
        pool = redis.BlockingConnectionPool.from_url(target.url, timeout=settings.redis_timeout, **kwargs)
    else:
        pool = redis.ConnectionPool.from_url(target.url, **kwargs)
    return client_class(connection_pool=pool)


def connect_replica(settings: Settings) -> redis.Redis | None:
    """A client for a replica (found through Sentinel), for cached reads while the primary is away; else None."""
    target = settings.redis
    if not target.is_sentinel:
        return None
    kwargs = _pool_kwargs(settings, 8)
    kwargs.pop("max_connections")
    replica: redis.Redis = sentinel(settings, target).slave_for(  # type: ignore[no-untyped-call]
        target.service, password=target.password or None, db=target.db, **kwargs)
    return replica


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


class _Bounded(Protocol):
    """What a guarded method's object has: settings (REDIS_TIMEOUT) and its process's time box."""

    settings: Settings
    timebox: Timebox


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_Bounded)


Method = Callable[Concatenate[S, P], R]


def guarded(error: type[RedisUnavailable]) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    """Decorator: the method's Redis calls are bounded, and "not now" failures raise `error` (a storage error)."""

    def wrap(method: Method[S, P, R]) -> Method[S, P, R]:
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with bounded(error, self.timebox, self.settings.redis_timeout):
                return method(self, *args, **kwargs)

        functools.update_wrapper(call, method)
        return call

    return wrap


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
