"""The write-behind drain: Celery tasks that move queued writes into MySQL in batches.

How the tasks run. DRAIN_CONCURRENCY slots are leased in Redis (leases.py).
Every worker's main process checks once a second (keeper.py) and starts a
`spillway.drain` task for each free slot; a task runs DRAIN_TASK_SECONDS,
then hands its slot to a successor it enqueues itself, so draining never
pauses and Flower lists one task per slot every few seconds with the rows it
wrote. A task whose worker died stops renewing its lease, the slot frees, and
the next tick anywhere starts a new task.

One batch. Entries are read from the Stream with XREADGROUP (up to
WRITE_BATCH_MAX records, or whatever arrived within WRITE_FLUSH_INTERVAL),
persisted in one transaction with their receipts (storage/writer.py), and only
after COMMIT acknowledged.
Entries a dead worker held are taken over (XAUTOCLAIM) once idle for
WRITE_CLAIM_IDLE. If MySQL is away or refuses the batch for a reason of its
own, the batch is retried with backoff, stays unacknowledged, and the trouble
is reported (/readyz, /metrics).

A burst. While writes arrive faster than the drains could write them, more
than a second of their work is queued, and the oldest queued write is younger
than DRAIN_LAG_BUDGET_S, the drain pauses between batches: on a host it shares
with the web, the CPUs go to taking the burst (the queue absorbs it), and past
the budget the drain takes what it needs. At a steady load the drains can keep
up with, they never pause, so the lag stays short. The rules themselves are
pure functions in pacing.py.

A full Redis. Acknowledging, leases and heartbeats work at maxmemory (their
scripts may), but publishing the successor task does not: a task that cannot
hand over keeps draining itself, for up to HANDOVER_PATIENCE, so the memory
its acknowledgements free lets the hand-over through.
"""
import logging
import os
import time
from typing import Any

from celery.signals import worker_shutting_down

from tasks import pacing
from tasks.celery import app, services
from webapp.clock import now_us
from webapp.metrics import BATCH_BUCKETS, LAG_BUCKETS_MS, bucket
from webapp.storage.errors import RedisUnavailable, StorageError, WriteDeferred
from webapp.storage.leases import QUEUED_LEASE, RUNNING_LEASE, worker_name
from webapp.storage.records import Item
from webapp.storage.services import Services
from webapp.storage.stream import Backlog, Entry
from webapp.storage.writer import persist

log = logging.getLogger(__name__)

HANDOVER_PATIENCE = 300.0  # seconds a task keeps draining while it cannot publish its successor
YIELD_CHECK_S = 0.25  # how often a drain looks at the backlog to decide whether to pause
_SUMMED = ("rows", "items", "events", "dead", "batches", "retries")


class Drainer:
    """One drain task's work: read batches, write them, acknowledge them."""

    def __init__(self, svc: Services, slot: int, token: str, seconds: float) -> None:
        self.svc = svc
        self.stream = svc.stream
        self.leases = svc.leases
        self.settings = svc.settings
        self.slot, self.token = slot, token
        self.consumer = worker_name()
        self.worker = worker_name(os.getppid())
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.carry: list[Entry] = []  # entries read but not yet written
        self.next_claim = 0.0
        # What Flower's Result column shows, in this order (it cuts the text): the work and its trouble first.
        self.result: dict[str, Any] = {"rows": 0, "dead": 0, "lag_ms_max": 0, "status": "ok", "slot": slot,
                                       "items": 0, "events": 0, "batches": 0, "lag_ms_avg": 0, "retries": 0}
        self._lag_total = 0
        self._in_trouble = False
        self._next_look = 0.0
        self._last_look: tuple[float, Backlog] | None = None
        self._pace = 0.0  # records/s this drain writes while it works (measured, smoothed)
        self._yield = False

    def alive(self) -> bool:
        """Renew the slot lease and heartbeat; False if the slot is lost or the worker stops.

        First, where the primary is (at most once a second): after a failover the
        connections to the old one are dropped, and this drain reads the new one.
        """
        self.svc.failover.poll()
        if self.leases.stopping(self.worker):
            self.result["status"] = "worker shutting down"
            return False
        held = self.leases.renew(self.slot, self.token, RUNNING_LEASE)
        self.leases.heartbeat(self.consumer)
        if not held:
            self.result["status"] = "slot lost"
        return held

    def run(self) -> dict[str, Any]:
        """Drain until the task's time is up; return what was done (shown in Flower).

        Redis away for a moment (restarted, a Sentinel election) is waited out here:
        the entries in hand stay unacknowledged and are read again.
        """
        started = False
        while time.monotonic() < self.deadline:
            try:
                if not started:
                    self.stream.ensure_group()
                    self.carry = self.stream.read_own_pending(self.consumer, 10_000)
                    started = True
                if not self.alive():
                    break
                batch = self.next_batch()
                if batch and not self.write(batch):
                    break
            except RedisUnavailable as err:
                log.warning("drain: Redis unavailable (%s); trying again", err)
                self.result["status"] = "redis unavailable"
                self.carry, started = [], False  # re-read what this consumer holds once Redis is back
                time.sleep(0.5)
        self.result["seconds"] = round(time.monotonic() - self.started, 3)
        self.result["lag_ms_avg"] = round(self._lag_total / self.result["rows"]) if self.result["rows"] else 0
        return self.result

    def look(self) -> None:
        """Every YIELD_CHECK_S: measure how fast writes arrive and leave, publish the drains' pace, decide to pause.

        The pace published (records persisted per second, all drains) is what
        backpressure's Retry-After is computed from.
        """
        s = self.settings
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + YIELD_CHECK_S
        seen = self.stream.backlog()
        last, self._last_look = self._last_look, (now, seen)
        self._yield = False
        if last is None or now - last[0] > 5 * YIELD_CHECK_S:
            return  # no recent look to measure rates against
        seconds = now - last[0]
        pace = pacing.pace_to_publish(last[1], seen, seconds)
        if pace is not None:
            self.leases.publish_pace(pace)
        self._yield = pacing.should_pause(last[1], seen, seconds, self._pace, s.write_batch_max,
                                          s.write_queue_high_water, s.drain_lag_budget)

    def yielding(self) -> bool:
        """True while a burst is young enough to leave the CPUs to the web (DRAIN_LAG_BUDGET_S)."""
        self.look()
        if self._yield:
            self.result["yielded_s"] = round(self.result.get("yielded_s", 0) + YIELD_CHECK_S, 2)
        return self._yield

    def next_batch(self) -> list[Entry]:
        """Whole entries holding up to WRITE_BATCH_MAX records, or what arrived within the flush interval."""
        s = self.settings
        if self.yielding():
            time.sleep(YIELD_CHECK_S)
            return []
        if time.monotonic() >= self.next_claim:
            self.carry += self.stream.claim_stale(self.consumer, 100)
            self.next_claim = time.monotonic() + s.write_claim_idle / 3
        batch, self.carry = pacing.take(self.carry, s.write_batch_max)
        count = sum(entry.count for entry in batch)
        if self.carry:
            return batch
        flush_at = time.monotonic() + s.write_flush_interval if batch else None
        while count < s.write_batch_max:
            now = time.monotonic()
            if flush_at is not None:
                wait = flush_at - now
                if wait <= 0:
                    break
            else:  # nothing yet: wait, but come back in time to renew the lease
                wait = min(1.0, self.deadline - now)
                if wait <= 0:
                    break
            want = pacing.entries_to_read(count, len(batch), s.write_batch_max)
            got = self.stream.read_new(self.consumer, want, max(1, int(wait * 1000)))
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

    def write(self, batch: list[Entry]) -> bool:
        """Write a batch (retrying while MySQL is away), then acknowledge it; False to stop."""
        records = [q for entry in batch for q in entry.queued()]
        started = time.monotonic()
        pause = pacing.FIRST_BACKOFF_S
        while True:
            self.stream.touch(self.consumer, batch)  # still ours: no other drain may claim them meanwhile
            try:
                done = persist(self.svc.db, batch)
                break
            except WriteDeferred as err:
                self.result["retries"] += 1
                self._in_trouble = True
                try:
                    self.leases.trouble(str(err))
                except StorageError as report_err:  # reporting must not stop the retry
                    log.warning("drain: could not report trouble (%s)", report_err)
                if time.monotonic() + pause >= self.deadline:
                    log.warning("drain: MySQL unavailable (%s); %d records stay queued", err, len(records))
                    self.result["status"] = "mysql unavailable"
                    return False  # unacknowledged: this process resumes them, or others reclaim them
                log.warning("drain: MySQL unavailable (%s); retrying in %.1fs", err, pause)
                time.sleep(pause)
                pause = pacing.next_backoff(pause)
                if not self.alive():
                    return False
        dead, duplicates = done.dead, done.duplicates
        now = now_us()
        written = [q for q in records if q.version not in dead and q.write_id not in duplicates]
        items = sum(1 for q in written if isinstance(q.record, Item))
        rows = len(written)
        lags = [(now - q.accepted_us) // 1000 for q in records]
        stats = {"batches": 1, "batch_records": len(records),
                 f"batch_size_le_{bucket(len(records), BATCH_BUCKETS)}": 1,
                 "lag_ms_sum": sum(lags), "lag_count": len(lags)}
        for lag in lags:
            field = f"lag_le_{bucket(lag, LAG_BUCKETS_MS)}"
            stats[field] = stats.get(field, 0) + 1
        if duplicates:
            stats["duplicate_writes"] = len(duplicates)
        self.stream.ack(batch, frozenset(dead), stats, duplicates)
        if self.result["retries"] == 0:  # this drain's pace while it works, smoothed
            self._pace = pacing.smoothed_pace(self._pace, len(records), time.monotonic() - started,
                                              self.settings.write_batch_max)
        if self._in_trouble:
            self._in_trouble = False
            self.leases.clear_trouble()
        self._lag_total += sum(lags)
        self.result["lag_ms_max"] = max(self.result["lag_ms_max"], max(lags))
        self.result["rows"] += rows
        self.result["items"] += items
        self.result["events"] += rows - items
        self.result["dead"] += len(dead)
        self.result["batches"] += 1
        return True


# Past the soft limit a task raises inside; past the hard one its process is replaced. Either
# way its entries stay unacknowledged and are reclaimed after WRITE_CLAIM_IDLE.
_LIMIT = int(max(services.settings.drain_task_seconds, services.settings.drain_idle_task_seconds)
             + services.settings.db_write_timeout + HANDOVER_PATIENCE + 30)


@app.task(name="spillway.drain", acks_late=True, reject_on_worker_lost=True, soft_time_limit=_LIMIT,
          time_limit=_LIMIT + 30)
def drain(slot: int, token: str) -> dict[str, Any]:
    """Drain the write queue for DRAIN_TASK_SECONDS in one slot, then hand the slot on."""
    leases = services.leases
    if not leases.renew(slot, token, RUNNING_LEASE):
        return {"slot": slot, "status": "stale: the slot was given to another task"}
    started = time.monotonic()
    total: dict[str, Any] = {}
    while True:
        result = Drainer(services, slot, token, services.settings.drain_task_seconds).run()
        total = _merged(total, result)
        if result["status"] == "slot lost":
            return total
        settings = services.settings
        if pacing.stay_idle(result, time.monotonic() - started, settings.drain_task_seconds,
                            settings.drain_idle_task_seconds) and not _others_waiting():
            continue  # nothing to write: stay, rather than add one more 0-row task to Flower's list
        try:  # hand on (a stopping worker's successor waits in the queue for another worker)
            leases.renew(slot, token, QUEUED_LEASE)
            drain.apply_async((slot, token), expires=QUEUED_LEASE)
            return total
        except Exception as err:  # broker full or away (kombu's errors): keep draining here, which frees memory
            if time.monotonic() - started > HANDOVER_PATIENCE or result["status"] == "worker shutting down":
                log.error("drain: could not hand slot %d on (%s); the keeper will start it again", slot, err)
                total["status"] = "could not hand over"
                return total
            log.warning("drain: could not hand slot %d on (%s); draining on in this task", slot, err)
            leases.renew(slot, token, RUNNING_LEASE)


def _others_waiting() -> bool:
    """True if a task waits in Celery's queue (a redrive, the retention run): an idle drain then gives up its process.

    Every pool process may be running a drain: one that stayed idle for a minute
    held back a redrive or the retention run behind it for that long.
    """
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel: Any = conn.default_channel
            declared = channel.queue_declare(queue=app.conf.task_default_queue, passive=True)
            return bool(declared.message_count)
    except Exception as err:  # the broker away or full (kombu's errors): stay, as before
        log.debug("drain: Celery's queue not read (%s)", err)
        return False


def _merged(total: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Two rounds' results as one (sums, maxima, the latest status)."""
    if not total:
        return dict(result)
    merged = {**result, **{k: total[k] + result[k] for k in _SUMMED}}
    merged["lag_ms_max"] = max(total["lag_ms_max"], result["lag_ms_max"])
    merged["seconds"] = round(total["seconds"] + result["seconds"], 3)
    merged["lag_ms_avg"] = round((total["lag_ms_avg"] * total["rows"] + result["lag_ms_avg"] * result["rows"])
                                 / merged["rows"]) if merged["rows"] else 0
    return merged


@worker_shutting_down.connect
def _tell_drains_to_stop(**_: Any) -> None:
    """Warm shutdown begins: this worker's drain tasks stop after the batch in hand.

    Celery waits for running tasks but does not tell them; pool processes see
    this flag (keyed by their parent's pid) between batches.
    """
    try:
        services.leases.mark_stopping(worker_name())
    except StorageError as err:  # Redis down: the tasks end at DRAIN_TASK_SECONDS instead
        log.warning("could not tell drain tasks to stop (%s)", err)
