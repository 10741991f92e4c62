"""The drain keeper: in each worker's main process, once a second, start a drain task for every free slot.

It also does the queue's housekeeping: idempotency keys past their time or
budget are deleted (they carry no TTL, so Redis never evicts them early), and
consumers left by dead worker processes are forgotten; about once a minute,
one keeper starts the retention task (receipts past RECEIPT_TTL, and rows past
their *_RETENTION_DAYS). No beat process:
every worker host runs a keeper, so nothing runs on one host only.
"""
import logging
import time
import uuid
from typing import Any

from celery import bootsteps

from tasks.celery import app, services
from webapp.storage.errors import StorageError
from webapp.storage.leases import QUEUED_LEASE

RETENTION_EVERY_S = 60  # the retention task runs about this often, on one worker host at a time
CONSUMER_IDLE_S = 600.0  # a consumer idle this long, holding nothing, belongs to a dead process

log = logging.getLogger(__name__)


class DrainKeeper(bootsteps.StartStopStep):
    """Start a drain task for every free slot, once a second."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.next_prune = 0.0

    def start(self, worker: Any) -> None:
        """Begin ticking."""
        self.tref = worker.timer.call_repeatedly(1.0, self.tick, priority=10)

    def stop(self, worker: Any) -> None:
        """Stop ticking (shutdown)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self) -> None:
        """Reserve free slots and start their tasks, then housekeeping; an outage only skips a tick."""
        try:
            token = uuid.uuid4().hex
            for slot in services.leases.reserve(services.settings.drain_slots, token, QUEUED_LEASE):
                app.send_task("spillway.drain", args=(slot, f"{token}:{slot}"), expires=QUEUED_LEASE)
        except StorageError as err:  # Redis away: the next tick retries
            log.warning("drain keeper: could not reserve drain slots (%s)", err)
        except Exception:  # the broker (kombu's errors); the timer must keep running, the next tick retries
            log.exception("drain keeper: could not start drain tasks")
        try:
            self.housekeeping()
        except StorageError as err:
            log.warning("drain keeper: housekeeping failed (%s)", err)
        except Exception:
            log.exception("drain keeper: housekeeping failed")

    def housekeeping(self) -> None:
        """Delete idempotency keys past their time or budget; forget dead consumers once a minute."""
        services.housekeeping.expire_due()
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + 60
            gone = services.stream.forget_idle_consumers(CONSUMER_IDLE_S)
            if gone:
                log.info("forgot %d idle drain consumers", len(gone), extra={"fields": {"consumers": gone}})
        self.start_retention()

    def start_retention(self) -> None:
        """Start the retention task (receipts, and whatever *_RETENTION_DAYS is set) if no host did this minute."""
        if services.housekeeping.take_retention_lease(RETENTION_EVERY_S):
            app.send_task("spillway.retention", expires=RETENTION_EVERY_S)
