"""Retention: events, tombstones and dead letters past their days are purged in small batches.

A periodic task, spillway.retention (visible in Flower), started by the keeper
of one worker host at a time (a lease in Redis) about once a minute, and only
when some *_RETENTION_DAYS is set. Deletes go 1,000 rows at a time, each its
own short transaction, so the drain's writes never wait long behind them.
"""
import time
from collections.abc import Callable
from typing import Any

from tasks.celery import app, services
from webapp.clock import now_us
from webapp.storage import keys
from webapp.storage.sql import deadletters
from webapp.storage.sql import events as events_sql
from webapp.storage.sql import items as items_sql

BATCH = 1000
MAX_SECONDS = 20.0  # one run's work at most; the next run goes on
DAY_US = 86_400 * 1_000_000


def _purge(delete: Callable[[Any], int], deadline: float) -> int:
    """Run `delete(con)` (one batch) until it deletes less than a batch or time is up; return the total."""
    total = 0
    while time.monotonic() < deadline:
        with services.db.connection() as con:
            deleted = delete(con)
        total += deleted
        if deleted < BATCH:
            break
        time.sleep(0.01)  # let the drain's transactions through
    return total


def tombstone_horizon() -> int:
    """The lowest version an older write of some key could still arrive with.

    A new write gets a version past the last one given and never behind Redis's
    clock (lua/accept.lua); queued writes and dead letters that could be redriven
    keep theirs. A minute of margin covers a clock that differs from Redis's.
    """
    candidates = [max(int(services.redis.get(keys.VERSION) or 0) + 1, now_us() - 60_000_000)]
    queued = services.stream.oldest_version()
    if queued is not None:
        candidates.append(queued)
    with services.db.connection() as con:
        dead = deadletters.lowest_version(con)
    if dead is not None:
        candidates.append(dead)
    return min(candidates)


@app.task(name="spillway.retention")
def retention() -> dict[str, Any]:
    """Purge what is past EVENTS_, TOMBSTONE_ and DEAD_LETTER_RETENTION_DAYS; return how many of each."""
    s = services.settings
    deadline = time.monotonic() + MAX_SECONDS
    now = now_us()
    done: dict[str, Any] = {}
    if s.events_retention_days:
        cutoff = now - int(s.events_retention_days * DAY_US)
        done["events"] = _purge(lambda con: events_sql.delete_received_before(con, cutoff, BATCH), deadline)
    if s.dead_letter_retention_days:
        cutoff = now - int(s.dead_letter_retention_days * DAY_US)
        done["dead_letters"] = _purge(lambda con: deadletters.delete_failed_before(con, cutoff, BATCH), deadline)
    if s.tombstone_retention_days:
        cutoff = now - int(s.tombstone_retention_days * DAY_US)
        horizon = tombstone_horizon()
        done["tombstones"] = _purge(lambda con: items_sql.delete_tombstones(con, cutoff, horizon, BATCH), deadline)
        done["tombstone_horizon"] = horizon
    if done:
        services.redis.hincrby(keys.STATS, "retention_runs", 1)
        for name in ("events", "dead_letters", "tombstones"):
            if done.get(name):
                services.redis.hincrby(keys.STATS, f"retention_purged_{name}", done[name])
    return done
