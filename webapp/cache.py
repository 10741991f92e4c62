"""The Redis client and the cache-aside logic for items.

An item's cache entry is the string "<version>|<updated_at us>|<data JSON>",
data empty for a deleted or missing item: one GET reads it, one SET writes it
and clears any TTL. Entries written by an accepted
write have no TTL until the drain has persisted them (read-your-writes); the
fill script only ever replaces an entry with a newer version, so a load from
MySQL can never shadow a pending write. One loader per key: greenlets of one
process share a load, processes share it through a short Redis lock.
"""
import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from webapp.coalesce import call, run_script
from webapp.deadline import Expired, deadline
from webapp.errors import APIError, CacheUnavailable, DatabaseUnavailable
from webapp.metrics import CACHE

CACHE_HIT, CACHE_MISS, CACHE_LOAD = CACHE.labels("hit"), CACHE.labels("miss"), CACHE.labels("load")

log = logging.getLogger(__name__)

PREFIX = "spillway:"
LUA_DIR = Path(__file__).parent / "lua"


def item_key(key):
    """Redis key of an item's cache entry."""
    return f"{PREFIX}item:{key}"


def make_redis(settings, pool_size=None, blocking=True):
    """A Redis client for this process (the pool notices forks and rebuilds).

    A stale pooled connection after a Redis restart fails at once and is retried
    once; a timeout is not retried, so a request waits at most REDIS_TIMEOUT.
    """
    kwargs = dict(
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        max_connections=pool_size or settings.redis_pool_size,
    )
    if blocking:  # wait (bounded) for a free connection instead of failing
        pool = redis.BlockingConnectionPool.from_url(settings.redis_url, timeout=settings.redis_timeout, **kwargs)
    else:
        pool = redis.ConnectionPool.from_url(settings.redis_url, **kwargs)
    return redis.Redis(connection_pool=pool)


def load_script(client, name):
    """Register a Lua script from webapp/lua/ (EVALSHA, reloaded after a restart)."""
    return client.register_script((LUA_DIR / f"{name}.lua").read_text())


@dataclass(frozen=True)
class Entry:
    """A cached item: data is JSON text, or None for a deleted/missing item."""

    version: int
    data: str | None
    updated_us: int

    @classmethod
    def parse(cls, raw):
        """The Entry in a cache value, or None for no value."""
        if raw is None:
            return None
        version, updated, data = raw.split(b"|", 2)
        return cls(int(version), data.decode() if data else None, int(updated))


def jittered_ms(ttl, jitter):
    """A TTL in milliseconds with up to `jitter` (a fraction) taken off at random."""
    return max(1, int(ttl * 1000 * (1 - random.random() * jitter)))


class SingleFlight:
    """Greenlets (or threads) asking for the same key share one call."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = {}

    def run(self, key, fn):
        """Return fn()'s result (or raise its error), calling it once per key at a time."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = {"done": threading.Event()}
        if not leader:
            call["done"].wait()
            if "error" in call:
                raise call["error"]
            return call["value"]
        try:
            call["value"] = fn()
            return call["value"]
        except Exception as err:
            call["error"] = err
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call["done"].set()


class ItemCache:
    """Cache-aside reads of items: Redis first, then one loader per key."""

    def __init__(self, client, settings, loader, coalescer=None):
        self.redis = client
        self.settings = settings
        self.loader = loader  # key -> (version, data|None, updated_us) or None
        self._fill = load_script(client, "fill")
        self._flight = SingleFlight()
        self._coalescer = coalescer  # gevent web workers: concurrent peeks share round trips
        # a loader holds the lock at most as long as its own bounded wait
        self._lock_ms = int((settings.db_pool_timeout + settings.db_query_timeout + 1) * 1000)

    def peek(self, key):
        """The cached entry for key, or None on a miss (one round trip, coalesced under gevent)."""
        with self._redis_bound():
            raw = call(self._coalescer, self.redis, self.settings.redis_timeout, "GET", item_key(key))
        return Entry.parse(raw)

    def get(self, key, peeked=False):
        """The item's entry (data None: 404), loading it from MySQL on a miss.

        peeked: the caller already found the key missing in Redis (the fast path).
        """
        entry = None if peeked else self.peek(key)
        if entry is not None:
            CACHE_HIT.inc()
            return entry
        CACHE_MISS.inc()
        return self._flight.run(key, lambda: self._load(key))

    def _load(self, key):
        """Load key under a cross-process lock, or wait for whoever holds it."""
        lock = f"{PREFIX}lock:{key}"
        token = os.urandom(8).hex()
        give_up = time.monotonic() + self.settings.db_pool_timeout + self.settings.db_query_timeout
        pause = 0.005
        while True:
            with self._redis_bound():
                got = call(self._coalescer, self.redis, self.settings.redis_timeout,
                           "SET", lock, token, "NX", "PX", self._lock_ms)
            if got:
                return self._load_locked(key, lock, token)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            with self._redis_bound():
                raw, holder = call(self._coalescer, self.redis, self.settings.redis_timeout,
                                   "MGET", item_key(key), lock)
            if raw is not None:
                return Entry.parse(raw)
            if holder and holder.startswith(b"!"):  # the loader failed: fail alike
                raise _failure(holder[1:].decode())
            if time.monotonic() > give_up:
                raise DatabaseUnavailable("The database did not answer in time; retry shortly.")

    def _load_locked(self, key, lock, token):
        """Read the row from MySQL and cache it; publish a failure to waiters."""
        CACHE_LOAD.inc()
        try:
            row = self.loader(key)
        except APIError as err:
            with self._redis_bound():
                self.redis.set(lock, "!" + err.code, px=1000)
            raise
        if row is None:
            version, data, updated_us = 0, None, 0
            ttl_ms = int(self.settings.negative_cache_ttl * 1000)
        else:
            version, data, updated_us = row
            ttl_ms = jittered_ms(self.settings.cache_ttl, self.settings.cache_ttl_jitter)
        with self._redis_bound():
            raw = run_script(self._coalescer, self._fill, [item_key(key), lock],
                             [version, data if data is not None else "", updated_us, ttl_ms, token],
                             self.settings.redis_timeout)
        return Entry.parse(raw)

    def _redis_bound(self):
        return redis_bound(self.settings.redis_timeout)

    def warm(self, rows, chunk=1000):
        """Cache (key, data, version, updated_us) rows read from MySQL; return how many.

        Goes through the fill script, so a warm-up never replaces a pending write
        or a newer entry. For after a Redis flush, or before a benchmark.
        """
        count = 0
        pipe = self.redis.pipeline(transaction=False)
        for key, data, version, updated_us in rows:
            ttl_ms = jittered_ms(self.settings.cache_ttl, self.settings.cache_ttl_jitter)
            self._fill(keys=[item_key(key), f"{PREFIX}lock:{key}"], args=[version, data, updated_us, ttl_ms, ""],
                       client=pipe)
            count += 1
            if count % chunk == 0:
                pipe.execute()
        pipe.execute()
        return count


def warm_all(services, prefix=""):
    """Cache every persisted item (or those with `prefix`), in key order; return how many."""
    from webapp.sql import items as items_sql

    after, total = None, 0
    while True:
        page = services.read(lambda con: items_sql.page(con, prefix, after, 5000))
        if not page:
            return total
        total += services.cache.warm(page)
        after = page[-1][0]


def init_app(app):
    """Register `flask --app webapp warm-cache`."""
    import click

    @app.cli.command("warm-cache")
    @click.option("--prefix", default="", help="only keys starting with this")
    def warm_cache_command(prefix):
        """Load every persisted item (or those with --prefix) from MySQL into the cache."""
        click.echo(f"Cached {warm_all(app.extensions['spillway'], prefix)} items.")


# Server states in which Redis cannot take a command right now (not bugs).
_UNAVAILABLE_REPLIES = ("OOM", "LOADING", "MASTERDOWN", "BUSY", "READONLY", "NOREPLICAS")


def is_unavailable(err):
    """True if a Redis error means the server is down, slow, full or read-only."""
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)):
        return True
    return isinstance(err, redis.ResponseError) and str(err).startswith(_UNAVAILABLE_REPLIES)


@contextmanager
def redis_bound(seconds, error=CacheUnavailable):
    """Redis unavailable, or a call running past `seconds`: raise `error` (a 503)."""
    try:
        with deadline(seconds):
            yield
    except Expired:
        raise error() from None
    except redis.RedisError as err:
        if not is_unavailable(err):
            raise
        log.warning("redis unavailable: %s", err)
        raise error() from err


def _failure(code):
    """The APIError a waiting request raises when the loader failed with `code`."""
    from webapp.errors import PoolTimeout

    return PoolTimeout() if code == "pool_timeout" else DatabaseUnavailable()
