"""Cache-aside reads of items: Redis first, then one loader per key.

An item's cache entry (keys.CacheEntry) is one string: one GET reads it, one
SET writes it and clears any TTL. Entries written by an accepted write have no
TTL until the drain has persisted them (read-your-writes); the fill script
only ever replaces an entry with a newer version, so a load from MySQL can
never shadow a pending write. One loader per key: greenlets or threads of one
process share a load, processes share it through a short Redis lock.
"""
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import redis

from webapp.config import Settings
from webapp.metrics import CACHE
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import CacheUnavailable, DatabaseUnavailable, PoolTimeout, StorageError
from webapp.storage.keys import CacheEntry
from webapp.storage.mysql import Reads
from webapp.storage.redis_client import bounded, load_script
from webapp.storage.sql import items as items_sql
from webapp.storage.sql.items import Row

CACHE_HIT, CACHE_MISS, CACHE_LOAD = CACHE.labels("hit"), CACHE.labels("miss"), CACHE.labels("load")
T = TypeVar("T")

log = logging.getLogger(__name__)


def jittered_ms(ttl: float, jitter: float) -> int:
    """A TTL in milliseconds with up to `jitter` (a fraction) taken off at random."""
    return max(1, int(ttl * 1000 * (1 - random.random() * jitter)))


def _entry(row: Row | None) -> CacheEntry:
    """A MySQL row (version, data, updated_us) as a cache entry; no row: a 404."""
    return CacheEntry(0, None, 0) if row is None else CacheEntry(*row)


class SingleFlight:
    """Greenlets (or threads) asking for the same key share one call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, dict[str, Any]] = {}  # key -> {"done": Event, "value" or "error"}

    def run(self, key: str, fn: Callable[[], T]) -> T:
        """Return fn()'s result (or raise its error), calling it once per key at a time."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = {"done": threading.Event()}
        if not leader:
            call["done"].wait()
            if "error" in call:
                raise call["error"]
            result: T = call["value"]
            return result
        try:
            value = call["value"] = fn()
            return value
        except Exception as err:
            call["error"] = err
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call["done"].set()


class ItemCache:
    """Cache-aside reads of items: Redis first, then one loader per key."""

    def __init__(self, client: redis.Redis, settings: Settings, reads: Reads, timebox: Timebox = no_timebox,
                 replica: redis.Redis | None = None) -> None:
        self.redis = client
        self.replica = replica  # with Sentinel: serves cached reads while the primary is away
        self.settings = settings
        self.reads = reads
        self._timebox = timebox
        self._fill = load_script(client, "fill")
        self._flight = SingleFlight()
        # a loader holds the lock at most as long as its own bounded wait
        self._lock_ms = int((settings.db_pool_timeout + settings.db_query_timeout + 1) * 1000)

    def _bounded(self) -> Any:
        return bounded(CacheUnavailable, self._timebox, self.settings.redis_timeout)

    def peek(self, key: str) -> CacheEntry | None:
        """The cached entry for key, or None on a miss (one round trip; a replica's if the primary is away)."""
        try:
            with self._bounded():
                raw = self.redis.get(keys.item(key))
        except CacheUnavailable:
            if self.replica is None:
                raise
            with self._bounded():
                raw = self.replica.get(keys.item(key))
            if raw is None:  # a miss now would be answered from MySQL and cached nowhere: be unavailable
                raise
        return CacheEntry.parse(raw)  # type: ignore[arg-type]

    def get(self, key: str, peeked: bool = False) -> CacheEntry:
        """The item's entry (data None: 404), loading it from MySQL on a miss.

        peeked: the caller already found the key missing in Redis (the fast path).
        """
        entry = None if peeked else self.peek(key)
        if entry is not None:
            CACHE_HIT.inc()
            return entry
        CACHE_MISS.inc()
        return self._flight.run(key, lambda: self._load(key))

    def _load(self, key: str) -> CacheEntry:
        """Load key under a cross-process lock, or wait for whoever holds it."""
        lock = keys.lock(key)
        token = os.urandom(8).hex()
        give_up = time.monotonic() + self.settings.db_pool_timeout + self.settings.db_query_timeout
        pause = 0.005
        while True:
            try:
                with self._bounded():
                    got = self.redis.set(lock, token, nx=True, px=self._lock_ms)
            except CacheUnavailable as err:
                if not err.full:
                    raise
                return self._load_uncached(key)  # Redis is full: serve the row, cache nothing
            if got:
                return self._load_locked(key, lock, token)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            with self._bounded():
                pair: Any = self.redis.mget(keys.item(key), lock)
            raw, holder = pair
            if raw is not None:
                return CacheEntry.parse(raw)  # type: ignore[return-value]
            if holder and holder.startswith(b"!"):  # the loader failed: fail alike
                raise PoolTimeout() if holder == b"!pool_timeout" else DatabaseUnavailable()
            if time.monotonic() > give_up:
                raise DatabaseUnavailable("MySQL did not answer in time")

    def _behind(self, key: str, row: tuple[int, str | None, int] | None) -> bool:
        """True if a replica's row (None: none) is older than the version of the key persisted last."""
        return bool(self._stale({key: row} if row is not None else {}, [key]))

    def _stale(self, rows: dict[str, tuple[int, str | None, int]], wanted: list[str]) -> list[str]:
        """Those of `wanted` whose replica row (in rows, or none) is older than the version persisted last."""
        with self._bounded():
            floors = self.redis.zmscore(keys.FLOORS, [keys.item(key) for key in wanted])
        return [key for key, floor in zip(wanted, floors)
                if floor is not None and (key not in rows or rows[key][0] < floor)]

    def _load_uncached(self, key: str) -> CacheEntry:
        """The row from MySQL, not cached (Redis cannot take it now)."""
        CACHE_LOAD.inc()
        row, from_replica = self.reads.run_where(lambda con: items_sql.get(con, key))
        if from_replica and self._behind(key, row):  # the replica lags behind what was persisted
            with self.reads.primary.connection() as con:
                row = items_sql.get(con, key)
        return _entry(row)

    def _load_locked(self, key: str, lock: str, token: str) -> CacheEntry:
        """Read the row from MySQL and cache it; publish a failure to waiters."""
        CACHE_LOAD.inc()
        try:
            row, from_replica = self.reads.run_where(lambda con: items_sql.get(con, key))
            if from_replica and self._behind(key, row):  # the replica lags behind what was persisted
                with self.reads.primary.connection() as con:
                    row, from_replica = items_sql.get(con, key), False
        except StorageError as err:
            failure = "!pool_timeout" if isinstance(err, PoolTimeout) else "!database_unavailable"
            with self._bounded():
                self.redis.set(lock, failure, px=1000)
            raise
        try:
            with self._bounded():
                raw = self._fill(keys=[keys.item(key), lock], args=self._fill_args(row, from_replica, token))
        except CacheUnavailable as err:
            if not err.full:
                raise
            return _entry(row)  # Redis is full: serve the row, cache nothing
        return CacheEntry.parse(raw)  # type: ignore[return-value]

    def _fill_args(self, row: Row | None, from_replica: bool, token: str = "") -> list[Any]:
        """fill.lua's arguments for a row read from MySQL (None: no row, a short negative entry)."""
        if row is None:
            return [0, "", 0, int(self.settings.negative_cache_ttl * 1000), token]
        version, data, updated_us = row
        ttl = self.settings.cache_ttl
        if from_replica:  # a lagging replica's old row must not stay cached for an hour
            ttl = min(ttl, self.settings.replica_cache_ttl)
        return [version, data if data is not None else "", updated_us, jittered_ms(ttl, self.settings.cache_ttl_jitter),
                token]

    def peek_many(self, wanted: Sequence[str]) -> list[CacheEntry | None]:
        """The cached entries of several keys (None: a miss), in one round trip; a replica's if the primary is away."""
        names = [keys.item(key) for key in wanted]
        try:
            with self._bounded():
                raws: Any = self.redis.mget(names)
        except CacheUnavailable:
            if self.replica is None:
                raise
            with self._bounded():
                raws = self.replica.mget(names)
            if None in raws:  # a miss now would be answered from MySQL and cached nowhere: be unavailable
                raise
        return [CacheEntry.parse(raw) for raw in raws]

    def get_many(self, wanted: Sequence[str]) -> list[CacheEntry]:
        """The entries of several distinct keys, in their order (data None: 404): one MGET, then the misses.

        The misses are read from MySQL in one query and cached through fill.lua,
        so a pending write is never shadowed; unlike get(), they take no loader
        lock: a multi-get costs one query, not one per key.
        """
        entries = self.peek_many(wanted)
        misses = [key for key, entry in zip(wanted, entries) if entry is None]
        CACHE_HIT.inc(len(wanted) - len(misses))
        if not misses:
            return entries  # type: ignore[return-value]
        CACHE_MISS.inc(len(misses))
        loaded = dict(zip(misses, self._load_many(misses)))
        return [entry if entry is not None else loaded[key] for key, entry in zip(wanted, entries)]

    def _load_many(self, misses: list[str]) -> list[CacheEntry]:
        """Read keys from MySQL in one query and cache each; with Redis full, serve the rows uncached."""
        CACHE_LOAD.inc(len(misses))
        rows, from_replica = self.reads.run_where(lambda con: items_sql.get_many(con, misses))
        primary: set[str] = set() if from_replica else set(misses)
        stale = self._stale(rows, misses) if from_replica else []
        if stale:  # the replica lags behind what was persisted: those keys from the primary, as one key's miss does
            with self.reads.primary.connection() as con:
                fresh = items_sql.get_many(con, stale)
            for key in stale:
                rows.pop(key, None)
                if key in fresh:
                    rows[key] = fresh[key]
            primary.update(stale)
        pipe = self.redis.pipeline(transaction=False)
        for key in misses:
            self._fill(keys=[keys.item(key), keys.lock(key)],
                       args=self._fill_args(rows.get(key), key not in primary), client=pipe)
        try:
            with self._bounded():
                raws = pipe.execute()
        except CacheUnavailable as err:
            if not err.full:
                raise
            return [_entry(rows.get(key)) for key in misses]
        return [CacheEntry.parse(raw) for raw in raws]  # type: ignore[misc]

    def warm(self, rows: Iterable[tuple[str, str, int, int]], chunk: int = 1000) -> int:
        """Cache (key, data, version, updated_us) rows read from MySQL; return how many.

        Goes through the fill script, so a warm-up never replaces a pending write
        or a newer entry. For after a Redis flush, or before a benchmark.
        """
        count = 0
        pipe = self.redis.pipeline(transaction=False)
        for key, data, version, updated_us in rows:
            ttl_ms = jittered_ms(self.settings.cache_ttl, self.settings.cache_ttl_jitter)
            self._fill(keys=[keys.item(key), keys.lock(key)], args=[version, data, updated_us, ttl_ms, ""],
                       client=pipe)
            count += 1
            if count % chunk == 0:
                pipe.execute()
        pipe.execute()
        return count

    def warm_all(self, prefix: str = "") -> int:
        """Cache every persisted item (or those with `prefix`), in key order; return how many."""
        after: str | None = None
        total = 0
        while True:
            page = self.reads.run(partial(items_sql.page, prefix=prefix, after=after, limit=5000))
            if not page:
                return total
            total += self.warm(page)
            after = page[-1][0]
