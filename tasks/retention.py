"""The retention task: receipts past RECEIPT_TTL, and events, tombstones and dead letters past their days.

A periodic task, spillway.retention (visible in Flower), started by the keeper
of one worker host at a time (a lease in Redis) about once a minute. The
purging is storage's (webapp/storage/retention.py); this task says what is due
and for how long.
"""
import time
from typing import Any

from tasks.celery import app, services
from webapp.clock import now_us

MAX_SECONDS = 20.0  # one run's work at most; the next run goes on
DAY_US = 86_400 * 1_000_000


@app.task(name="spillway.retention")
def retention() -> dict[str, Any]:
    """Purge what is past EVENTS_, TOMBSTONE_ and DEAD_LETTER_RETENTION_DAYS; return how many of each."""
    s, purge = services.settings, services.retention
    deadline = time.monotonic() + MAX_SECONDS
    now = now_us()
    done: dict[str, Any] = {"receipts": purge.receipts((now // 1000) - int(s.receipt_ttl * 1000), deadline)}
    if s.events_retention_days:
        done["events"] = purge.events(now - int(s.events_retention_days * DAY_US), deadline)
    if s.dead_letter_retention_days:
        done["dead_letters"] = purge.dead_letters(now - int(s.dead_letter_retention_days * DAY_US), deadline)
    if s.tombstone_retention_days:
        done["tombstones"], done["tombstone_horizon"] = purge.tombstones(
            now - int(s.tombstone_retention_days * DAY_US), deadline)
    purge.count({name: done[name] for name in ("receipts", "events", "dead_letters", "tombstones") if name in done})
    return done
