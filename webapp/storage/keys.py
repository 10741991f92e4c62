"""Every Redis key Spillway uses, and the format of an item's cache entry.

The Lua scripts in lua/ receive these keys as KEYS[] (and the item prefix as
an argument), so this module is the one place that names them:

  queue               the Stream: one entry per accepted write, with all its records
  queue:depth         queued records (not entries), for backpressure and /readyz
  queue:bytes         queued bytes (an item counts twice: Stream and pending entry)
  queue:accepted      records accepted so far (the drain compares its pace with it)
  queue:unreadable    entries the drain could not parse, set aside with the reason
  version             the last version given to a record
  write:<id>          a write's receipt (hash), while the write is queued (then it is in MySQL)
  idem:<key id>:<h>   an Idempotency-Key seen for an API key, kept IDEMPOTENCY_CACHE_S
  expiry              sorted set: idempotency key -> when to delete it (ms); no TTL,
                      so that Redis can never evict them early
  rate:<key id>       GCRA state of an API key's write rate
  item:<key>          an item's cache entry (below)
  lock:<key>          the cross-process loader lock of an item
  drain:alive         sorted set: drain consumer -> last heartbeat (ms)
  drain:slot:<n>      lease of drain slot n (leases.py)
  drain:stopping      sorted set: Celery worker that is shutting down -> until when (ms)
  drain:trouble       the server error a batch is waiting out (error, since_ms, at_ms)
  drain:rate          records/s the drains persisted lately (for backpressure's Retry-After)
  stats               the drain's counters for /metrics
  redrive:inflight    sorted set: versions of redriven dead letters not yet acknowledged
                      (older than the queue's head: retention must not purge past them)
  retention:lease     the one worker host that runs the retention task now
  floors              sorted set: item cache key -> its newest persisted version, for REPLICA_MAX_LAG_S
  floors:at           sorted set: item cache key -> when it was persisted (us, Redis time), to forget floors
                      (only with MYSQL_REPLICA_URL: a replica's row older than that is not served)
"""
from dataclasses import dataclass

PREFIX = "spillway:"
STREAM = PREFIX + "queue"
GROUP = "drain"
DEPTH = PREFIX + "queue:depth"
BYTES = PREFIX + "queue:bytes"
ACCEPTED = PREFIX + "queue:accepted"
EXPIRY = PREFIX + "expiry"
UNREADABLE = PREFIX + "queue:unreadable"
VERSION = PREFIX + "version"
ALIVE = PREFIX + "drain:alive"
SLOTS = PREFIX + "drain:slot:"
STOPPING = PREFIX + "drain:stopping"
STATS = PREFIX + "stats"
TROUBLE = PREFIX + "drain:trouble"
DRAIN_RATE = PREFIX + "drain:rate"
REDRIVE_INFLIGHT = PREFIX + "redrive:inflight"
FLOORS = PREFIX + "floors"
FLOORS_AT = PREFIX + "floors:at"
RETENTION_LEASE = PREFIX + "retention:lease"
ITEM = PREFIX + "item:"
IDEMPOTENCY = PREFIX + "idem:"


def item(key: str) -> str:
    """Redis key of an item's cache entry."""
    return ITEM + key


def lock(key: str) -> str:
    """Redis key of an item's loader lock."""
    return f"{PREFIX}lock:{key}"


def receipt(write_id: str) -> str:
    """Redis key of a write's receipt."""
    return f"{PREFIX}write:{write_id}"


def idempotency(key_id: str, digest: str) -> str:
    """Redis key of an Idempotency-Key (by its digest) seen for an API key."""
    return f"{IDEMPOTENCY}{key_id}:{digest}"


def rate(key_id: str) -> str:
    """Redis key of an API key's rate-limit state."""
    return f"{PREFIX}rate:{key_id}"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """An item's cache entry: the string "<version>|<updated_at us>|<data JSON>".

    data is None for a deleted or missing item (empty in the string). Written by
    lua/accept.lua (pending writes) and lua/fill.lua (loads from MySQL).
    """

    version: int
    data: str | None
    updated_us: int

    @classmethod
    def parse(cls, raw: bytes | None) -> "CacheEntry | None":
        """The entry in a cache value, or None for no value."""
        if raw is None:
            return None
        version, updated, data = raw.split(b"|", 2)
        return cls(int(version), data.decode() if data else None, int(updated))
