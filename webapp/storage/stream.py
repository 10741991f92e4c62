"""The durable write queue, drain side: read entries in a consumer group, take over stale ones, acknowledge.

An entry's fields: w write id, k kind (items|events), n record count, v the
first record's version (records get v, v+1, ...), t acceptance time (us), b the
bytes it counts against WRITE_QUEUE_HIGH_WATER_BYTES, i and h its
Idempotency-Key's id and the request hash it is bound to (if it had one), d 1
for a redriven dead letter, r the records (records.pack). lua/ack.lua acknowledges entries after COMMIT: XACK and XDEL,
the receipt, the counters, the stats, and the cache entries' TTLs.
"""
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from webapp.config import Settings
from webapp.storage import keys
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.cache import jittered_ms
from webapp.storage.errors import QueueUnavailable
from webapp.storage.records import Item, Queued, Record, unpack
from webapp.storage.redis_client import guarded, load_script

log = logging.getLogger(__name__)

ACK_KEYS = [keys.STREAM, keys.DEPTH, keys.STATS, keys.BYTES, keys.REDRIVE_INFLIGHT]  # lua/ack.lua's KEYS (and floors)
ALIVE_WINDOW_MS = 30_000  # a drain that has not beaten for this long counts as dead
REDRIVE, SET_ASIDE = 1, 2  # lua/ack.lua's per-entry marker: a redriven dead letter, an unreadable entry


def head_age_s(head: list[Any], now_ms: int) -> float:
    """Age in seconds of the queue's oldest entry, from XRANGE queue - + COUNT 1 (0 when empty)."""
    if not head:
        return 0.0
    return max(0.0, (now_ms - int(head[0][0].split(b"-")[0])) / 1000)


@dataclass(frozen=True)
class Backlog:
    """The queue at one moment: what is queued, how old, and the running totals in and out."""

    depth: int  # records queued
    age_s: float  # of the oldest queued write
    accepted: int  # records accepted so far
    alive: int  # drain processes alive
    done: int  # records persisted or dead-lettered so far


@dataclass(frozen=True)
class Entry:
    """One Stream entry: one accepted write and its records."""

    id: bytes
    write_id: str
    kind: str
    count: int
    version: int
    accepted_us: int
    records: list[Record]
    size: int = 0
    redrive: bool = False  # a dead letter sent back through the queue (its receipt moves on by itself)
    idem_key: str | None = None  # "<API key id>:<digest>" of its Idempotency-Key, claimed in MySQL
    request_hash: str | None = None

    @classmethod
    def parse(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> "Entry":
        """Build an Entry from XREADGROUP's (id, {field: value}); ValueError if it is malformed."""
        kind = fields[b"k"].decode()
        entry = cls(
            id=entry_id,
            write_id=fields[b"w"].decode(),
            kind=kind,
            count=int(fields[b"n"]),
            version=int(fields[b"v"]),
            accepted_us=int(fields[b"t"]),
            records=unpack(kind, fields[b"r"]),
            size=int(fields.get(b"b", 0)),
            redrive=fields.get(b"d") == b"1",
            idem_key=fields[b"i"].decode() if b"i" in fields else None,
            request_hash=fields[b"h"].decode() if b"h" in fields else None,
        )
        if len(entry.records) != entry.count:
            raise ValueError(f"{len(entry.records)} records where the entry says {entry.count}")
        return entry

    def queued(self) -> list[Queued]:
        """The entry's records, each with its own version."""
        return [Queued(r, self.version + i, self.write_id, self.accepted_us) for i, r in enumerate(self.records)]


class Stream:
    """The drain's consumer-group view of the queue."""

    def __init__(self, client: redis.Redis, settings: Settings, timebox: Timebox = no_timebox) -> None:
        self.redis = client
        self.settings = settings
        self.timebox = timebox
        self._ack = load_script(client, "ack")
        self._prune = load_script(client, "prune")
        self._claim_from = "0-0"  # where XAUTOCLAIM goes on from, across calls

    @guarded(QueueUnavailable)
    def backlog(self) -> "Backlog":
        """The queue at a glance, in one round trip (for the drain's pace and its pauses)."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.DEPTH)
        pipe.xrange(keys.STREAM, count=1)
        pipe.get(keys.ACCEPTED)
        pipe.zcount(keys.ALIVE, now_ms - ALIVE_WINDOW_MS, "+inf")
        pipe.hmget(keys.STATS, "persisted_items", "persisted_events", "dead_items", "dead_events")
        depth, first, accepted, alive, done = pipe.execute()
        return Backlog(int(depth or 0), head_age_s(first, now_ms), int(accepted or 0), int(alive),
                       sum(int(v or 0) for v in done))

    @guarded(QueueUnavailable)
    def ensure_group(self) -> None:
        """Create the consumer group (from the Stream's start, so nothing queued is skipped).

        Asked first, created only if missing: XGROUP CREATE is refused when Redis is
        full (even for a group that exists), and a drain starting on a full Redis
        must get to its reads and acknowledgements, which free the memory.
        """
        try:
            groups = self.redis.xinfo_groups(keys.STREAM)
        except redis.ResponseError:  # no Stream yet
            groups = []
        if any(g["name"] in (keys.GROUP, keys.GROUP.encode()) for g in groups):
            return
        try:
            self.redis.xgroup_create(keys.STREAM, keys.GROUP, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def _read(self, consumer: str, start: str, count: int, block_ms: int | None = None) -> list[Entry]:
        try:
            reply: Any = self.redis.xreadgroup(keys.GROUP, consumer, {keys.STREAM: start}, count=count, block=block_ms)
        except redis.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            self.ensure_group()  # Redis lost its data (or was flushed): start over
            return []
        return self._parsed((i, f) for _, entries in (reply or []) for i, f in entries if f)

    def _parsed(self, raw_entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry]:
        """Entries parsed; one that cannot be is set aside so it never blocks the queue."""
        entries = []
        for entry_id, fields in raw_entries:
            try:
                entries.append(Entry.parse(entry_id, fields))
            except Exception as err:  # any malformed entry: its reason goes with it
                self.set_aside(entry_id, fields, f"{type(err).__name__}: {err}")
        return entries

    @guarded(QueueUnavailable)
    def set_aside(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        """Move an unreadable entry to queue:unreadable, acknowledge it, mark its receipt dead.

        Its pending cache entries are dropped where their keys can still be read, so
        reads see MySQL again instead of a write that will never be persisted.
        """
        log.error("write queue entry %s is unreadable and was set aside: %s", entry_id, reason)
        try:
            self.redis.xadd(keys.UNREADABLE, {**fields, b"entry": entry_id, b"reason": reason})  # type: ignore[dict-item]
        except redis.exceptions.OutOfMemoryError:
            # Redis is full: keeping it there would wedge this consumer on the same entry for good (the
            # acknowledgement below may run at maxmemory; this XADD may not). Its content goes to the log.
            log.error("write queue entry %s could not be kept in %s (Redis is full); it was: %r", entry_id,
                      keys.UNREADABLE, fields)
        write_id = fields.get(b"w", b"").decode(errors="replace")
        count = int(fields[b"n"]) if fields.get(b"n", b"").isdigit() else 0
        size = int(fields[b"b"]) if fields.get(b"b", b"").isdigit() else 0
        kind = fields.get(b"k", b"items").decode(errors="replace")
        drop: list[Any] = []
        if kind == "items" and fields.get(b"v", b"").isdigit():
            for i, key in enumerate(_readable_keys(fields.get(b"r", b""))):
                if key:
                    drop += [keys.item(key), int(fields[b"v"]) + i, 0]
        receipt = keys.receipt(write_id)
        self._ack(keys=[*ACK_KEYS, "", ""],
                  args=[keys.GROUP, 0, 1, "unreadable_entries", 1, entry_id, receipt, count, count,
                        kind, size, SET_ASIDE, fields.get(b"v", b"0"), len(drop) // 3, *drop])
        # The receipt stays in Redis, dead (it never reaches MySQL), until RECEIPT_TTL is up.
        self.redis.zadd(keys.EXPIRY, {receipt: int((time.time() + self.settings.receipt_ttl) * 1000)})

    @guarded(QueueUnavailable)
    def read_own_pending(self, consumer: str, count: int) -> list[Entry]:
        """Entries delivered to this consumer earlier and not yet acknowledged."""
        return self._read(consumer, "0", count)

    @guarded(QueueUnavailable)
    def read_new(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """New entries, waiting up to block_ms for the first one."""
        return self._read(consumer, ">", count, block_ms or None)

    @guarded(QueueUnavailable)
    def claim_stale(self, consumer: str, count: int) -> list[Entry]:
        """Take over entries another consumer has held longer than WRITE_CLAIM_IDLE."""
        idle_ms = int(self.settings.write_claim_idle * 1000)
        try:
            reply: Any = self.redis.xautoclaim(keys.STREAM, keys.GROUP, consumer, idle_ms, self._claim_from,
                                               count=count)
        except redis.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            self.ensure_group()
            return []
        # Go on from where this scan stopped next time ("0-0" once it went round), so a
        # long pending list is walked through, not its first `count` entries again and again.
        cursor = reply[0]
        self._claim_from = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return self._parsed((i, f) for i, f in reply[1] if f)

    @guarded(QueueUnavailable)
    def touch(self, consumer: str, entries: list[Entry]) -> None:
        """Reset the idle time of entries this consumer holds (while it still writes them: not for the taking)."""
        if entries:
            self.redis.xclaim(keys.STREAM, keys.GROUP, consumer, 0, [e.id for e in entries], justid=True)

    @guarded(QueueUnavailable)
    def forget_idle_consumers(self, idle_s: float) -> list[str]:
        """Delete consumers that hold nothing and were idle for idle_s (lua/prune.lua); return their names."""
        gone = self._prune(keys=[keys.STREAM], args=[keys.GROUP, int(idle_s * 1000)])
        return [name.decode() for name in gone]

    @guarded(QueueUnavailable)
    def ack(self, entries: list[Entry], dead_versions: frozenset[int] = frozenset(),
            stats: dict[str, int] | None = None, duplicates: frozenset[str] = frozenset()) -> int:
        """Acknowledge entries after COMMIT (and their receipts archived); return how many this call acknowledged.

        dead_versions: versions of records that went to the dead-letter store.
        stats: {counter: amount} added once (e.g. batches, rows).
        duplicates: write ids stored as duplicates of an earlier write with the same
        Idempotency-Key: none of their records was written, so their pending cache
        entries go, as a dead record's do.
        """
        s = self.settings
        stats = stats or {}
        # With a MySQL replica, the versions just persisted are kept a while: a miss read from a replica that
        # has not caught up with them is read again from the primary (storage/cache.py).
        floors = [keys.FLOORS, keys.FLOORS_AT] if s.mysql_replica_url else ["", ""]
        args: list[Any] = [keys.GROUP, int(s.replica_max_lag_s * 1_000_000), len(stats)]
        for field, amount in stats.items():
            args += [field, amount]
        for entry in entries:
            duplicate = entry.write_id in duplicates
            dead = sum(1 for i in range(entry.count) if entry.version + i in dead_versions)
            cache: list[Any] = []
            for i, record in enumerate(entry.records):
                if isinstance(record, Item):
                    version = entry.version + i
                    if duplicate or version in dead_versions:
                        ttl = 0  # never written: reads see MySQL again
                    elif entry.redrive:  # no pending entry of its own: a cached older one must go
                        ttl = -1
                    else:
                        ttl = jittered_ms(s.cache_ttl, s.cache_ttl_jitter)
                    cache += [keys.item(record.key), version, ttl]
            args += [entry.id, keys.receipt(entry.write_id), entry.count, dead, entry.kind, entry.size,
                     int(entry.redrive), entry.version, len(cache) // 3, *cache]
        return int(self._ack(keys=[*ACK_KEYS, *floors], args=args))

    @guarded(QueueUnavailable)
    def oldest_version(self) -> int | None:
        """The lowest version a queued record still has (the head's, or a redriven one's), or None if none."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(keys.STREAM, count=1)
        pipe.zrange(keys.REDRIVE_INFLIGHT, 0, 0, withscores=True)
        first, inflight = pipe.execute()
        found = [int(first[0][1][b"v"])] if first and b"v" in first[0][1] else []
        found += [int(score) for _, score in inflight]
        return min(found) if found else None


def _readable_keys(blob: bytes) -> list[str]:
    """The item keys of a damaged records blob, as far as they can be read (best effort)."""
    found = []
    for raw in blob.split(b"\x01"):
        key, sep, _ = raw.partition(b"\x00")
        try:
            found.append(key.decode() if sep else "")
        except UnicodeDecodeError:
            found.append("")
    return found
