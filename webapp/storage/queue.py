"""The durable write queue, web side: append a write in one round trip, read receipts and queue stats.

lua/accept.lua does the whole acceptance atomically: idempotency, rate limit,
backpressure, the client's deadline, versions, the Stream entry (XADD), the
pending cache entries of items (read-your-writes) and the receipt. The drain's
side of the Stream is in stream.py.
"""
import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoScriptError

from webapp.config import Settings
from webapp.metrics import ACCEPTED, REFUSALS
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import (
    Backpressure,
    CacheUnavailable,
    IdempotencyKeyReused,
    QueueUnavailable,
    RateLimited,
    ReplicationTimeout,
    StorageError,
)
from webapp.storage.failover import Failover
from webapp.storage.records import Record, kind_of, pack
from webapp.storage.redis_client import bounded, load_script
from webapp.storage.stream import ALIVE_WINDOW_MS, head_age_s

TROUBLE_WINDOW_MS = 30_000  # a drain retrying a server error reported it within this
# What one write leaves in Redis, measured on Redis 7.0 (used_memory over 20,000 writes: 245 and 409 bytes;
# tests/e2e/test_redis_budget.py checks them with MEMORY USAGE):
RECEIPT_BYTES = 320  # its receipt hash, while the write is queued (counted against the byte bound)
IDEMPOTENCY_KEY_BYTES = 420  # its Idempotency-Key and the key's entry in the expiry index, for IDEMPOTENCY_CACHE_S
CLOCK_CHECK_S = 10.0  # how often a web worker measures its clock against Redis's
CLOCK_SAMPLE_MAX_S = 0.05  # a measurement whose round trip took longer says too little: it is dropped
# spillway_write_refusals_total{reason}: the first class that matches names the reason.
REFUSED_FOR: tuple[tuple[type[StorageError], str], ...] = (
    (Backpressure, "backpressure"), (RateLimited, "rate_limited"), (IdempotencyKeyReused, "idempotency_key_reused"),
    (ReplicationTimeout, "replication_timeout"), (QueueUnavailable, "queue_unavailable"),
)


def new_write_id(now_ms: int | None = None) -> str:
    """A fresh write id: 'w_', its acceptance time (ms, 11 hex digits), then 15 random hex digits.

    Ids sort by time, so MySQL's `writes` table is purged by key range, and an
    id says when its write was accepted: a receipt past its time answers
    `receipt_expired`, not a bare 404.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"w_{ms:011x}{secrets.token_hex(8)[:15]}"


def accepted_ms(write_id: str) -> int | None:
    """When a write was accepted, from its id (None for an id that carries no time)."""
    try:
        ms = int(write_id[2:13], 16)
    except ValueError:
        return None
    return ms if 1_600_000_000_000 <= ms <= 4_000_000_000_000 else None


@dataclass(frozen=True, slots=True)
class RateLeft:
    """An API key's write rate (WRITE_RATE_LIMIT: `limit` requests per `window_s`) as one answer leaves it."""

    limit: int
    window_s: int
    remaining: int  # requests the key may send now
    reset_s: float  # seconds until the whole limit is back (refused: until the next request is allowed)


@dataclass(frozen=True, slots=True)
class Receipt:
    """An accepted write: its id, how many records it queued, what its acceptance promises, the key's rate left."""

    write_id: str
    accepted: int
    durability: str = "aof"
    rate: RateLeft | None = None  # None: no WRITE_RATE_LIMIT


class WriteQueue:
    """Append writes to the queue; report receipts and the queue's state."""

    def __init__(self, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox,
                 failover: Failover | None = None) -> None:
        self.redis = client
        self.settings = settings
        self._timebox = timebox
        self._failover = failover
        self._accept = load_script(client, "accept")
        self._offset_us = 0
        self._offset_checked = -CLOCK_CHECK_S
        self._policy = settings.write_rate  # (requests, seconds), or None
        # GCRA: one request per `interval` us, bursts of up to `limit` requests.
        self._rate = (int(self._policy[1] * 1_000_000 / self._policy[0]), self._policy[0]) if self._policy else None

    def append(self, records: Sequence[Record], key_id: str, idempotency_key: str | None = None,
               request_hash: str = "") -> Receipt:
        """Queue one write of records (all of one kind); return its receipt.

        For items the script also caches each record as a pending entry (read-
        your-writes). Raises IdempotencyKeyReused, RateLimited, Backpressure or
        QueueUnavailable; nothing was queued then. Each refusal is counted in
        spillway_write_refusals_total{reason}.
        """
        try:
            return self._append(records, key_id, idempotency_key, request_hash)
        except StorageError as err:
            REFUSALS.labels(next((reason for kind, reason in REFUSED_FOR if isinstance(err, kind)),
                                 "queue_unavailable")).inc()
            raise

    def _append(self, records: Sequence[Record], key_id: str, idempotency_key: str | None,
                request_hash: str) -> Receipt:
        if self._failover is not None and self._failover.writes_paused():
            raise QueueUnavailable("a Redis failover is under way: nothing was accepted; retry in a moment",
                                   retry_after=1)
        kind = kind_of(records)
        write_id = new_write_id()
        timeout = self.settings.redis_timeout
        idem, idem_id = "", ""
        if idempotency_key is not None:
            digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
            idem, idem_id = keys.idempotency(key_id, digest), f"{key_id}:{digest}"
        rate_key, interval, burst = "", 0, 0
        if self._rate:
            rate_key = keys.rate(key_id)
            interval, burst = self._rate
        script_keys = [keys.STREAM, keys.DEPTH, keys.VERSION, keys.receipt(write_id), idem, rate_key, keys.BYTES,
                       keys.EXPIRY, keys.ACCEPTED, keys.DRAIN_RATE, keys.STATS]
        with bounded(QueueUnavailable, self._timebox, timeout):
            # The script refuses to run after this moment, in Redis's clock: by then this
            # request has answered 503, and a late-arriving command must not queue it anyway.
            deadline_us = int((time.time() + timeout) * 1_000_000) + self._redis_clock_offset_us() - 50_000
            args: list[Any] = [write_id, kind, len(records), pack(records), self.settings.write_queue_high_water,
                               deadline_us, request_hash, interval, burst, 0,
                               int(self.settings.idempotency_cache_s), keys.ITEM,
                               self.settings.write_queue_high_water_bytes, keys.GROUP, idem_id, RECEIPT_BYTES]
            if self.settings.write_durability == "replica":
                result, acked = self._accept_on_replicas(script_keys, args)
            else:
                result, acked = self._accept(keys=script_keys, args=args), None
        status = result[0].decode()
        if status == "ok":
            if acked is not None and acked < self.settings.write_min_replicas:
                raise ReplicationTimeout(f"{acked} of {self.settings.write_min_replicas} replicas acknowledged",
                                         retry_after=1)
            if result[3] == b"new":
                ACCEPTED.labels(kind).inc(len(records))
            rate = self._rate_left(int(result[4]), int(result[5]) / 1_000_000) if len(result) > 4 else None
            return Receipt(result[1].decode(), int(result[2]), self.settings.write_durability, rate)
        if status == "conflict":
            raise IdempotencyKeyReused()
        if status == "rate_limited":  # whole seconds, rounded up: a client back any earlier is refused again
            wait = max(1, math.ceil(int(result[1]) / 1_000_000))
            raise RateLimited(retry_after=wait, rate=self._rate_left(0, wait))
        if status == "backpressure":  # Retry-After: the queue's excess over the drains' measured pace
            raise Backpressure(retry_after=int(result[2]))
        raise QueueUnavailable("Redis ran the accept script after the client's deadline")

    def _rate_left(self, remaining: int, reset_s: float) -> RateLeft:
        assert self._policy is not None  # the script reports a rate only when there is one
        return RateLeft(self._policy[0], self._policy[1], remaining, reset_s)

    def _accept_on_replicas(self, script_keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """Run the accept script, then WAIT for WRITE_MIN_REPLICAS on the same connection: (reply, replicas).

        A client that offers group_commit (the web's coalescer) sends one WAIT after a
        whole batch of concurrent accepts, so they share the wait (group commit).
        """
        s = self.settings
        timeout_ms = max(1, int(s.write_replica_timeout * 1000))
        group_commit = getattr(self.redis, "group_commit", None)
        if group_commit is None:
            pipe = self.redis.pipeline(transaction=False)
            self._accept(keys=script_keys, args=args, client=pipe)
            pipe.execute_command("WAIT", s.write_min_replicas, timeout_ms)  # type: ignore[no-untyped-call]
            reply, acked = pipe.execute()
            return reply, int(acked)
        command = ("EVALSHA", self._accept.sha, len(script_keys), *script_keys, *args)
        try:
            reply, acked = group_commit(command, s.write_min_replicas, timeout_ms)
        except NoScriptError:  # a new primary after a failover, or a restarted Redis
            self.redis.script_load(self._accept.script)
            reply, acked = group_commit(command, s.write_min_replicas, timeout_ms)
        return reply, int(acked)

    def _redis_clock_offset_us(self) -> int:
        """Redis's clock minus this host's, in us (measured every CLOCK_CHECK_S; 0 until known).

        The accept script compares the client's deadline with Redis's clock, so a web
        host whose clock is behind would otherwise see every write expire.
        """
        now = time.monotonic()
        if now >= self._offset_checked + CLOCK_CHECK_S:
            self._offset_checked = now
            before = time.time()
            seconds, micros = self.redis.time()
            after = time.time()
            # Redis read its clock somewhere in [before, after] of ours: the offset is at least
            # redis - after. That lower bound makes a deadline that is never later than the moment
            # the client gives up; the midpoint, after a round trip stretched by a stalled Redis,
            # put it up to half the stall later, and a write answered 503 could still be queued.
            # A slow round trip bounds it too loosely: such a sample is dropped.
            if after - before <= CLOCK_SAMPLE_MAX_S:
                self._offset_us = seconds * 1_000_000 + micros - int(after * 1_000_000)
        return self._offset_us

    def receipt(self, write_id: str) -> dict[str, str] | None:
        """A write's receipt as stored, or None."""
        with bounded(CacheUnavailable, self._timebox, self.settings.redis_timeout):
            fields = self.redis.hgetall(keys.receipt(write_id))
        return {k.decode(): v.decode() for k, v in fields.items()} or None  # type: ignore[union-attr]

    def stats(self, timeout: float | None = None) -> dict[str, Any]:
        """The queue and the drain at a glance, for /readyz and /metrics.

        {"depth": queued records, "bytes": queued bytes (receipts included), "oldest_age_s":
        age of the oldest entry, "alive": drain processes, "trouble": None or {"error",
        "for_s"} while a batch waits out a server error, "unreadable": entries set aside,
        "idempotency_keys": keys held (IDEMPOTENCY_CACHE_S), "memory": {"used", "max", "full"}}.
        """
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.DEPTH)
        pipe.get(keys.BYTES)
        pipe.xrange(keys.STREAM, count=1)
        pipe.zcount(keys.ALIVE, now_ms - ALIVE_WINDOW_MS, "+inf")
        pipe.hgetall(keys.TROUBLE)
        pipe.info("memory")
        pipe.info("persistence")
        pipe.xlen(keys.UNREADABLE)
        pipe.zcard(keys.EXPIRY)
        with bounded(CacheUnavailable, self._timebox, timeout or self.settings.redis_timeout):
            depth, size, first, alive, trouble, memory, persistence, unreadable, idempotency_keys = pipe.execute()
        report = None
        if trouble and now_ms - int(trouble.get(b"at_ms", 0)) < TROUBLE_WINDOW_MS:
            report = {"error": trouble[b"error"].decode(errors="replace"),
                      "for_s": round((now_ms - int(trouble[b"since_ms"])) / 1000, 1)}
        used, limit = int(memory["used_memory"]), int(memory.get("maxmemory", 0))
        return {"depth": int(depth or 0), "bytes": int(size or 0),
                "oldest_age_s": round(head_age_s(first, now_ms), 3), "alive": int(alive), "trouble": report,
                "unreadable": int(unreadable), "idempotency_keys": int(idempotency_keys),
                "memory": {"used": used, "max": limit, "full": 0 < limit <= used},
                # a failed AOF write: Redis refuses writes (MISCONF) until one succeeds again (disk space back)
                "aof_ok": str(persistence.get("aof_last_write_status", "ok")) == "ok"}

    def counters(self) -> dict[str, int]:
        """The drain's counters kept in Redis (records persisted and dead, batches, lag buckets)."""
        with bounded(CacheUnavailable, self._timebox, self.settings.redis_timeout):
            stored = self.redis.hgetall(keys.STATS)
        return {k.decode(): int(v) for k, v in stored.items()}  # type: ignore[union-attr]
