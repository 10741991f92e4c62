"""The drain keeper: in each worker's main process, once a second, start a drain task for every free slot.

It also does the queue's housekeeping: receipts and idempotency keys whose
time is up are deleted (they carry no TTL, so Redis never evicts them early),
and consumers left by dead worker processes are forgotten. No beat process:
every worker host runs a keeper, so nothing runs on one host only.
"""
import logging
import time
import uuid
from typing import Any

from celery import bootsteps

from tasks.celery import services
from tasks.leases import QUEUED_LEASE, Leases
from webapp.storage import keys
from webapp.storage.redis_client import load_script

RETENTION_EVERY_S = 60  # the retention task runs about this often, on one worker host at a time
EXPIRE_BATCH = 500  # receipts and idempotency keys deleted per call
EXPIRE_ROUNDS = 40  # calls per tick at most: up to 20,000 a second per worker host, far above any write rate
CONSUMER_IDLE_S = 600.0  # a consumer idle this long, holding nothing, belongs to a dead process

log = logging.getLogger(__name__)


class DrainKeeper(bootsteps.StartStopStep):
    """Start a drain task for every free slot, once a second."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.next_prune = 0.0
        self.leases: Leases | None = None
        self.expire: Any = None

    def start(self, worker: Any) -> None:
        """Begin ticking (the scripts are registered here, once: that needs no Redis yet)."""
        self.leases = Leases(services.redis)
        self.expire = load_script(services.redis, "expire")
        self.tref = worker.timer.call_repeatedly(1.0, self.tick, priority=10)

    def stop(self, worker: Any) -> None:
        """Stop ticking (shutdown)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self) -> None:
        """Reserve free slots and start their tasks, then housekeeping; a Redis outage only skips a tick."""
        from tasks.drain import drain

        try:
            token = uuid.uuid4().hex
            assert self.leases is not None  # start() ran
            for slot in self.leases.reserve(services.settings.drain_slots, token, QUEUED_LEASE):
                drain.apply_async((slot, f"{token}:{slot}"), expires=QUEUED_LEASE)
        except Exception as err:  # the timer must keep running; the next tick retries
            log.warning("drain keeper: could not start drain tasks (%s)", err)
        try:
            self.housekeeping()
        except Exception as err:
            log.warning("drain keeper: housekeeping failed (%s)", err)

    def housekeeping(self) -> None:
        """Delete receipts and idempotency keys past their time; forget dead consumers once a minute."""
        now_ms = int(time.time() * 1000)
        for _ in range(EXPIRE_ROUNDS):  # until what is due is gone, so they never pile up
            if self.expire(keys=[keys.EXPIRY], args=[now_ms, EXPIRE_BATCH]) < EXPIRE_BATCH:
                break
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + 60
            gone = services.stream.forget_idle_consumers(CONSUMER_IDLE_S)
            if gone:
                log.info("forgot %d idle drain consumers", len(gone), extra={"fields": {"consumers": gone}})
        self.start_retention()

    def start_retention(self) -> None:
        """Start the retention task if some *_RETENTION_DAYS is set and no host did so this minute."""
        from tasks.retention import retention

        s = services.settings
        if not (s.events_retention_days or s.tombstone_retention_days or s.dead_letter_retention_days):
            return
        if services.redis.set(keys.RETENTION_LEASE, "1", nx=True, ex=RETENTION_EVERY_S):
            retention.apply_async(expires=RETENTION_EVERY_S)
