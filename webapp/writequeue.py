"""The durable write queue in Redis: append accepted writes (web), read and ack them (drain).

Layout (every key starts with spillway:):
  queue               the Stream: one entry per accepted write, with all its records
  queue:depth         queued records (not entries), for backpressure and /readyz
  version             the last version given to a record
  write:<id>          a write's receipt (hash), kept RECEIPT_TTL
  idem:<key>:<hash>   an Idempotency-Key seen for an API key, kept 24 h
  rate:<key>          GCRA state of an API key's write rate
  item:<key>          an item's cache entry (see webapp/cache.py)
  drain:alive         sorted set: drain consumer -> last heartbeat (ms)
  drain:slot:<n>      lease of drain slot n (tasks/drain.py)
  queue:unreadable    entries the drain could not parse, set aside with the reason
  stats               counters for /metrics (records persisted, dead, batches)

An entry's fields: w write id, k kind (items|events), n record count, v the
first record's version (records get v, v+1, ...), t acceptance time (us), r the
records: fields joined by \0, records by \1 (items: key, data JSON; events:
name, level, occurred_us, event_id, data JSON; empty for none). Neither byte can
occur: keys, names and ids are refused with control characters, and compact
JSON escapes them. So data travels as it was encoded, never escaped again.
"""
import hashlib
import logging
import secrets
import socket
import time
from dataclasses import dataclass

import redis

from webapp.cache import PREFIX, item_key, jittered_ms, load_script, redis_bound
from webapp.coalesce import run_script
from webapp.errors import Backpressure, Conflict, QueueUnavailable, RateLimited
from webapp.metrics import ACCEPTED

log = logging.getLogger(__name__)

STREAM = PREFIX + "queue"
GROUP = "drain"
DEPTH = PREFIX + "queue:depth"
VERSION = PREFIX + "version"
ALIVE = PREFIX + "drain:alive"
SLOTS = PREFIX + "drain:slot:"
STATS = PREFIX + "stats"
UNREADABLE = PREFIX + "queue:unreadable"
ALIVE_WINDOW_MS = 30_000  # a drain that has not beaten for this long counts as dead
IDEMPOTENCY_TTL = 24 * 3600


def receipt_key(write_id):
    """Redis key of a write's receipt."""
    return f"{PREFIX}write:{write_id}"


def new_write_id():
    """A fresh write id: 'w_' and 26 random characters."""
    return "w_" + secrets.token_hex(13)


@dataclass(frozen=True)
class Entry:
    """One Stream entry as the drain sees it."""

    id: bytes
    write_id: str
    kind: str
    count: int
    version: int
    accepted_us: int
    records: list

    @classmethod
    def parse(cls, entry_id, fields):
        """Build an Entry from XREADGROUP's (id, {field: value}); ValueError if it is malformed."""
        kind = fields[b"k"].decode()
        entry = cls(
            id=entry_id,
            write_id=fields[b"w"].decode(),
            kind=kind,
            count=int(fields[b"n"]),
            version=int(fields[b"v"]),
            accepted_us=int(fields[b"t"]),
            records=unpack_records(kind, fields[b"r"]),
        )
        if len(entry.records) != entry.count:
            raise ValueError(f"{len(entry.records)} records where the entry says {entry.count}")
        return entry


def pack_records(records):
    """The Stream form of records (lists of str, int or None): see the module doc."""
    return "\x01".join("\x00".join("" if f is None else str(f) for f in r) for r in records).encode()


def unpack_records(kind, blob):
    """Records back from their Stream form: items [key, data|None], events [name, level, occurred_us|None,
    event_id|None, data|None]."""
    width = _FIELDS.get(kind)
    if width is None:
        raise ValueError(f"unknown kind {kind!r}")
    records = []
    for raw in blob.decode().split("\x01"):
        fields = [f or None for f in raw.split("\x00")]
        if len(fields) != width or fields[0] is None:
            raise ValueError(f"a record of {len(fields)} fields where {kind} have {width}")
        if kind == "events" and fields[2] is not None:
            fields[2] = int(fields[2])
        records.append(fields)
    return records


_FIELDS = {"items": 2, "events": 5}


class WriteQueue:
    """Append writes to the queue, read and acknowledge them, report on it."""

    stats_key = STATS

    def __init__(self, client, settings, coalescer=None):
        self.redis = client
        self.settings = settings
        self._coalescer = coalescer  # gevent web workers: concurrent writes share round trips
        self._accept = load_script(client, "accept")
        self._ack = load_script(client, "ack")
        self._slots = load_script(client, "slots")
        rate = settings.write_rate
        # GCRA: one request per `interval` us, bursts of up to `limit` requests.
        self._rate = (int(rate[1] * 1_000_000 / rate[0]), rate[0]) if rate else None

    # --- the web side ---------------------------------------------------------------

    def append(self, kind, records, key_id, idempotency_key=None, request_hash=""):
        """Queue one write; return its receipt {"write_id", "accepted", "status_url"}.

        For items the script also caches each record as a pending entry (read-
        your-writes). Raises Conflict, RateLimited, Backpressure or
        QueueUnavailable (nothing was queued then).
        """
        write_id = new_write_id()
        timeout = self.settings.redis_timeout
        # The script refuses to run after this moment: by then this request has
        # answered 503, and a late-arriving command must not queue it anyway.
        deadline_us = int((time.time() + timeout) * 1_000_000) - 50_000
        idem = ""
        if idempotency_key is not None:
            digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
            idem = f"{PREFIX}idem:{key_id}:{digest}"
        rate_key, interval, burst = "", 0, 0
        if self._rate:
            rate_key = f"{PREFIX}rate:{key_id}"
            interval, burst = self._rate
        keys = [STREAM, DEPTH, VERSION, receipt_key(write_id), idem, rate_key]
        args = [write_id, kind, len(records), pack_records(records), self.settings.write_queue_high_water,
                deadline_us, request_hash, interval, burst, int(self.settings.receipt_ttl), IDEMPOTENCY_TTL,
                item_key("")]
        with redis_bound(timeout, QueueUnavailable):
            result = run_script(self._coalescer, self._accept, keys, args, timeout)
        status = result[0].decode()
        if status == "ok":
            write_id = result[1].decode()
            if result[3] == b"new":
                ACCEPTED.labels(kind).inc(len(records))
            return {"write_id": write_id, "accepted": int(result[2]),
                    "status_url": f"/api/v1/writes/{write_id}"}
        if status == "conflict":
            raise Conflict()
        if status == "rate_limited":
            raise RateLimited(retry_after=max(1, int(result[1]) / 1_000_000))
        if status == "backpressure":
            raise Backpressure(retry_after=5)
        raise QueueUnavailable()  # 'expired': Redis ran it too late, nothing queued

    def receipt(self, write_id):
        """A write's receipt as stored, or None."""
        with redis_bound(self.settings.redis_timeout):
            fields = self.redis.hgetall(receipt_key(write_id))
        return {k.decode(): v.decode() for k, v in fields.items()} or None

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

    # --- the drain side ---------------------------------------------------------------

    def ensure_group(self):
        """Create the consumer group (from the Stream's start, so nothing queued is skipped)."""
        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def _read(self, consumer, start, count, block_ms=None):
        try:
            reply = self.redis.xreadgroup(GROUP, consumer, {STREAM: start}, count=count, block=block_ms)
        except redis.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            self.ensure_group()  # Redis lost its data (or was flushed): start over
            return []
        return self._parsed((i, f) for _, entries in (reply or []) for i, f in entries if f)

    def _parsed(self, raw_entries):
        """Entries parsed; one that cannot be is set aside so it never blocks the queue."""
        entries = []
        for entry_id, fields in raw_entries:
            try:
                entries.append(Entry.parse(entry_id, fields))
            except Exception as err:  # any malformed entry: its reason goes with it
                self.set_aside(entry_id, fields, f"{type(err).__name__}: {err}")
        return entries

    def set_aside(self, entry_id, fields, reason):
        """Move an unreadable entry to queue:unreadable, acknowledge it, mark its receipt dead."""
        log.error("write queue entry %s is unreadable and was set aside: %s", entry_id, reason)
        self.redis.xadd(UNREADABLE, {**fields, b"entry": entry_id, b"reason": reason})
        write_id = fields.get(b"w", b"").decode(errors="replace")
        count = int(fields[b"n"]) if fields.get(b"n", b"").isdigit() else 0
        kind = fields.get(b"k", b"items").decode(errors="replace")
        self._ack(keys=[STREAM, DEPTH, STATS],
                  args=[GROUP, 1, "unreadable_entries", 1, entry_id, receipt_key(write_id), count, count, kind, 0])

    def read_own_pending(self, consumer, count):
        """Entries delivered to this consumer earlier and not yet acknowledged."""
        return self._read(consumer, "0", count)

    def read_new(self, consumer, count, block_ms):
        """New entries, waiting up to block_ms for the first one."""
        return self._read(consumer, ">", count, block_ms or None)

    def claim_stale(self, consumer, count):
        """Take over entries another consumer has held longer than WRITE_CLAIM_IDLE."""
        idle_ms = int(self.settings.write_claim_idle * 1000)
        try:
            reply = self.redis.xautoclaim(STREAM, GROUP, consumer, idle_ms, "0-0", count=count)
        except redis.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            self.ensure_group()
            return []
        return self._parsed((i, f) for i, f in reply[1] if f)

    def ack(self, entries, dead_versions=frozenset(), stats=None):
        """Acknowledge entries after COMMIT; return how many this call acknowledged.

        dead_versions: versions of records that went to the dead-letter store.
        stats: {counter: amount} added once (e.g. batches, rows).
        """
        s = self.settings
        stats = stats or {}
        args = [GROUP, len(stats)]
        for field, amount in stats.items():
            args += [field, amount]
        for entry in entries:
            dead = sum(1 for i in range(entry.count) if entry.version + i in dead_versions)
            cache = []
            if entry.kind == "items":
                for i, (key, _) in enumerate(entry.records):
                    version = entry.version + i
                    ttl = 0 if version in dead_versions else jittered_ms(s.cache_ttl, s.cache_ttl_jitter)
                    cache += [item_key(key), version, ttl]
            args += [entry.id, receipt_key(entry.write_id), entry.count, dead, entry.kind, len(cache) // 3, *cache]
        return self._ack(keys=[STREAM, DEPTH, STATS], args=args)

    def heartbeat(self, consumer):
        """Record that this drain consumer is alive (for /readyz)."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(ALIVE, {consumer: now_ms})
        pipe.zremrangebyscore(ALIVE, "-inf", now_ms - 3600_000)
        pipe.execute()

    def mark_stopping(self, worker_pid):
        """Flag a Celery worker (by its main process pid) as shutting down."""
        self.redis.set(f"{PREFIX}drain:stopping:{socket.gethostname()}:{worker_pid}", 1, ex=300)

    def stopping(self, worker_pid):
        """True if the worker with this main process pid is shutting down."""
        return bool(self.redis.exists(f"{PREFIX}drain:stopping:{socket.gethostname()}:{worker_pid}"))

    # --- drain slots (tasks/drain.py) --------------------------------------------------

    def reserve_slots(self, count, token, lease_s):
        """Reserve every free slot of `count` for `token`; return the slot numbers."""
        return [int(n) for n in self._slots(keys=[SLOTS], args=["reserve", count, token, int(lease_s * 1000)])]

    def renew_slot(self, slot, token, lease_s):
        """Extend a slot lease; False if the token no longer holds it."""
        return bool(self._slots(keys=[SLOTS], args=["renew", slot, token, int(lease_s * 1000)]))
