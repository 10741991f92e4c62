"""The drain keeper: in each worker's main process, start a drain task for every free slot, once a second.

No beat process: any worker host restarts missing slots, so nothing runs on one host only.
"""
import logging
import uuid
from typing import Any

from celery import bootsteps

from tasks.celery import services
from tasks.leases import QUEUED_LEASE, Leases

log = logging.getLogger(__name__)


class DrainKeeper(bootsteps.StartStopStep):
    """Start a drain task for every free slot, once a second."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        """Begin ticking."""
        self.tref = worker.timer.call_repeatedly(1.0, self.tick, priority=10)

    def stop(self, worker: Any) -> None:
        """Stop ticking (shutdown)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self) -> None:
        """Reserve free slots and start their tasks; a Redis outage only skips a tick."""
        from tasks.drain import drain

        try:
            token = uuid.uuid4().hex
            for slot in Leases(services.redis).reserve(services.settings.drain_slots, token, QUEUED_LEASE):
                drain.apply_async((slot, f"{token}:{slot}"), expires=QUEUED_LEASE)
        except Exception as err:  # the timer must keep running; the next tick retries
            log.warning("drain keeper: could not start drain tasks (%s)", err)
