"""The write-behind drain: Celery tasks that move queued writes into MySQL in batches.

How the tasks run. DRAIN_CONCURRENCY slots are leased in Redis. Every worker's
main process checks once a second (DrainKeeper) and starts a `spillway.drain`
task for each free slot; a task runs DRAIN_TASK_SECONDS, then hands its slot
to a successor it enqueues itself, so draining never pauses and Flower lists
one task per slot every few seconds with the rows it wrote. A task whose
worker died stops renewing its lease, the slot frees, and the next tick
anywhere starts a new task. No beat process: nothing here runs on one host only.

One batch. Entries are read from the Stream with XREADGROUP (up to
WRITE_BATCH_MAX records, or whatever arrived within WRITE_FLUSH_INTERVAL),
written with one multi-row upsert per table in one transaction, and only
after COMMIT acknowledged (XACK). Entries a dead worker held are taken over
(XAUTOCLAIM) once idle for WRITE_CLAIM_IDLE. Applying a batch twice changes
nothing: item rows only move to higher versions, events are keyed by version.
If MySQL is down the batch is retried with backoff and stays unacknowledged;
if MySQL rejects a record, the batch is split until that record is alone, it
goes to dead_letters with the reason, and the rest is written.
"""
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import pymysql
from celery import bootsteps
from celery.signals import worker_shutting_down

from tasks.celery import app, services
from webapp.clock import now_us, to_datetime
from webapp.db import is_connection_error
from webapp.errors import ServiceUnavailable
from webapp.metrics import BATCH_BUCKETS, LAG_BUCKETS_MS, bucket
from webapp.sql import deadletters
from webapp.sql import events as events_sql
from webapp.sql import items as items_sql

log = logging.getLogger(__name__)

QUEUED_LEASE = 60.0  # a slot reserved for a task not yet started
RUNNING_LEASE = 20.0  # renewed between batches while a task runs
# MySQL errors that say nothing about the records (locks, a broken schema,
# privileges, a read-only server): retried, never dead-lettered.
RETRY_ERRORS = {1205, 1213, 1044, 1045, 1046, 1049, 1054, 1064, 1142, 1146, 1227, 1290, 1792, 1836}


class Transient(Exception):
    """MySQL cannot take the batch now; it stays queued and is retried."""


@dataclass(frozen=True)
class Record:
    """One queued record with what the drain needs to write it."""

    kind: str
    version: int
    write_id: str
    accepted_us: int
    payload: list


def records_of(entries):
    """The records of entries, each with its own version."""
    return [Record(e.kind, e.version + i, e.write_id, e.accepted_us, payload)
            for e in entries for i, payload in enumerate(e.records)]


def _write(db, records, dead=()):
    """Write records (and dead letters) in one transaction."""
    items, events = {}, []
    for r in records:
        if r.kind == "items":
            key, data = r.payload
            # within one attempt, only a key's newest record needs writing
            if key not in items or items[key][2] < r.version:
                items[key] = (key, data, r.version, to_datetime(r.accepted_us))
        else:
            name, level, occurred_us, event_id, data = r.payload
            events.append((r.version, event_id, name, level, to_datetime(occurred_us or r.accepted_us),
                           to_datetime(r.accepted_us), data))
    with db.connection() as con:
        con.begin()
        with con.cursor() as cur:
            if items:  # in key order: concurrent drains lock rows in the same order
                items_sql.upsert(cur, [items[k] for k in sorted(items)])
            if events:
                events_sql.insert(cur, events)
            if dead:
                deadletters.insert(cur, dead)
        con.commit()


def _transient(err):
    """True if a MySQL error is about the server, not the records."""
    if isinstance(err, ServiceUnavailable):
        return True
    code = err.args[0] if err.args else 0
    return is_connection_error(err) or code in RETRY_ERRORS


def apply(db, records, dead):
    """Write records; isolate any MySQL rejects into `dead` {version: reason} (bisection)."""
    try:
        _write(db, records)
        return
    except (pymysql.err.Error, ServiceUnavailable) as err:
        if _transient(err):
            raise Transient(str(err)) from err
        failure = err
    if len(records) > 1:
        middle = len(records) // 2
        apply(db, records[:middle], dead)
        apply(db, records[middle:], dead)
        return
    record = records[0]
    reason = f"MySQL error {failure.args[0]}: {failure.args[1] if len(failure.args) > 1 else failure}"
    try:
        _write(db, [], dead=[(record.version, record.write_id, record.kind,
                              json.dumps(record.payload, ensure_ascii=False).encode(), reason)])
    except (pymysql.err.Error, ServiceUnavailable) as err:
        raise Transient(f"cannot store a dead letter: {err}") from err
    log.error("dead-lettered record %s of write %s: %s", record.version, record.write_id, reason)
    dead[record.version] = reason


class Drainer:
    """One drain task's work: read batches, write them, acknowledge them."""

    def __init__(self, svc, slot, token, seconds):
        self.svc = svc
        self.queue = svc.queue
        self.settings = svc.settings
        self.slot, self.token = slot, token
        self.consumer = f"{socket.gethostname()}:{os.getpid()}"
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.carry = []  # entries read but not yet written
        self.next_claim = 0.0
        self.result = {"slot": slot, "rows": 0, "items": 0, "events": 0, "dead": 0, "batches": 0,
                       "lag_ms_max": 0, "lag_ms_avg": 0, "retries": 0, "status": "ok"}
        self._lag_total = 0

    def alive(self):
        """Renew the slot lease and heartbeat; False if the slot is lost or the worker stops."""
        if self.queue.stopping(os.getppid()):
            self.result["status"] = "worker shutting down"
            return False
        held = self.queue.renew_slot(self.slot, self.token, RUNNING_LEASE)
        self.queue.heartbeat(self.consumer)
        if not held:
            self.result["status"] = "slot lost"
        return held

    def run(self):
        """Drain until the task's time is up; return what was done (shown in Flower)."""
        self.queue.ensure_group()
        self.carry = self.queue.read_own_pending(self.consumer, 10_000)
        while time.monotonic() < self.deadline:
            if not self.alive():
                break
            batch = self.next_batch()
            if batch and not self.write(batch):
                break
        self.result["seconds"] = round(time.monotonic() - self.started, 3)
        self.result["lag_ms_avg"] = round(self._lag_total / self.result["rows"]) if self.result["rows"] else 0
        return self.result

    def next_batch(self):
        """Whole entries holding up to WRITE_BATCH_MAX records, or what arrived within the flush interval."""
        s = self.settings
        if time.monotonic() >= self.next_claim:
            self.carry += self.queue.claim_stale(self.consumer, 100)
            self.next_claim = time.monotonic() + s.write_claim_idle / 3
        batch, count = [], 0
        while self.carry and (not batch or count + self.carry[0].count <= s.write_batch_max):
            entry = self.carry.pop(0)
            batch.append(entry)
            count += entry.count
        if self.carry:
            return batch
        flush_at = time.monotonic() + s.write_flush_interval if batch else None
        while count < s.write_batch_max:
            now = time.monotonic()
            if batch:
                wait = flush_at - now
                if wait <= 0:
                    break
            else:  # nothing yet: wait, but come back in time to renew the lease
                wait = min(1.0, self.deadline - now)
                if wait <= 0:
                    break
            per_entry = max(1, count // len(batch)) if batch else 24
            want = max(1, min(500, (s.write_batch_max - count) // per_entry))
            got = self.queue.read_new(self.consumer, want, max(1, int(wait * 1000)))
            if not got:
                if batch:
                    break
                return []
            for entry in got:
                if self.carry or (batch and count + entry.count > s.write_batch_max):
                    self.carry.append(entry)
                else:
                    batch.append(entry)
                    count += entry.count
            if not batch:
                continue
            if flush_at is None:
                flush_at = time.monotonic() + s.write_flush_interval
            if self.carry:
                break
        return batch

    def write(self, batch):
        """Write a batch (retrying while MySQL is away), then acknowledge it; False to stop."""
        records = records_of(batch)
        pause = 0.2
        while True:
            dead = {}
            try:
                apply(self.svc.db, records, dead)
                break
            except Transient as err:
                self.result["retries"] += 1
                if time.monotonic() + pause >= self.deadline:
                    log.warning("drain: MySQL unavailable (%s); %d records stay queued", err, len(records))
                    self.result["status"] = "mysql unavailable"
                    return False  # unacknowledged: this process resumes them, or others reclaim them
                log.warning("drain: MySQL unavailable (%s); retrying in %.1fs", err, pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                if not self.alive():
                    return False
        now = now_us()
        items = sum(1 for r in records if r.kind == "items" and r.version not in dead)
        rows = len(records) - len(dead)
        lags = [(now - r.accepted_us) // 1000 for r in records]
        stats = {"batches": 1, "batch_records": len(records),
                 f"batch_size_le_{bucket(len(records), BATCH_BUCKETS)}": 1,
                 "lag_ms_sum": sum(lags), "lag_count": len(lags)}
        for lag in lags:
            field = f"lag_le_{bucket(lag, LAG_BUCKETS_MS)}"
            stats[field] = stats.get(field, 0) + 1
        self.queue.ack(batch, frozenset(dead), stats)
        self._lag_total += sum(lags)
        self.result["lag_ms_max"] = max(self.result["lag_ms_max"], max(lags))
        self.result["rows"] += rows
        self.result["items"] += items
        self.result["events"] += rows - items
        self.result["dead"] += len(dead)
        self.result["batches"] += 1
        return True


@app.task(name="spillway.drain", acks_late=True, reject_on_worker_lost=True)
def drain(slot, token):
    """Drain the write queue for DRAIN_TASK_SECONDS in one slot, then hand the slot on."""
    queue = services.queue
    if not queue.renew_slot(slot, token, RUNNING_LEASE):
        return {"slot": slot, "status": "stale: the slot was given to another task"}
    result = Drainer(services, slot, token, services.settings.drain_task_seconds).run()
    if result["status"] != "slot lost":  # hand on (a stopping worker's successor waits in the queue)
        queue.renew_slot(slot, token, QUEUED_LEASE)
        drain.apply_async((slot, token), expires=QUEUED_LEASE)
    return result


class DrainKeeper(bootsteps.StartStopStep):
    """In each worker's main process: start a drain task for every free slot, once a second."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        """Begin ticking."""
        self.tref = worker.timer.call_repeatedly(1.0, self.tick, priority=10)

    def stop(self, worker):
        """Stop ticking (shutdown)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self):
        """Reserve free slots and start their tasks; a Redis outage only skips a tick."""
        try:
            token = uuid.uuid4().hex
            for slot in services.queue.reserve_slots(services.settings.drain_slots, token, QUEUED_LEASE):
                drain.apply_async((slot, f"{token}:{slot}"), expires=QUEUED_LEASE)
        except Exception as err:  # the timer must keep running; the next tick retries
            log.warning("drain keeper: could not start drain tasks (%s)", err)


app.steps["worker"].add(DrainKeeper)


@worker_shutting_down.connect
def _tell_drains_to_stop(**_):
    """Warm shutdown begins: this worker's drain tasks stop after the batch in hand.

    Celery waits for running tasks but does not tell them; pool processes see
    this flag (keyed by their parent's pid) between batches.
    """
    try:
        services.queue.mark_stopping(os.getpid())
    except Exception as err:  # Redis down: the tasks end at DRAIN_TASK_SECONDS instead
        log.warning("could not tell drain tasks to stop (%s)", err)
