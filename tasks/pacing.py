"""The drain's rules as pure functions: how a batch is made up, how its pace is measured, when it pauses.

tasks/drain.py runs them; tests/unit/test_drain_rules.py checks each one alone,
without Redis or MySQL.
"""
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from webapp.storage.stream import Backlog

YIELD_DEPTH = 2  # a burst has at least this many full batches queued, growing...
YIELD_PACE = 1.0  # ...with writes arriving faster than this share of what the drains write
YIELD_BACKLOG_S = 1.0  # ...and more queued than the drains write in this many seconds (the lag promise)
YIELD_AGE_SHARE = 0.8  # a drain pauses while the oldest write is younger than this share of DRAIN_LAG_BUDGET_S
SMOOTHING = 0.2  # weight of the newest measurement in a drain's pace
FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.2, 5.0  # waits between tries of a batch MySQL did not take
GUESSED_RECORDS_PER_ENTRY = 24  # before a batch has told us
MAX_ENTRIES_PER_READ = 500


class Counted(Protocol):
    """Anything that holds some records (a Stream entry)."""

    @property
    def count(self) -> int: ...


E = TypeVar("E", bound=Counted)


def take(entries: Sequence[E], room: int) -> tuple[list[E], list[E]]:
    """(taken, left): whole entries from the front while their records fit in `room`; always at least one."""
    taken, count = 0, 0
    for entry in entries:
        if taken and count + entry.count > room:
            break
        taken += 1
        count += entry.count
    return list(entries[:taken]), list(entries[taken:])


def entries_to_read(records: int, entries: int, batch_max: int) -> int:
    """How many entries to ask the Stream for to fill a batch holding `records` in `entries` so far."""
    per_entry = max(1, records // entries) if entries else GUESSED_RECORDS_PER_ENTRY
    return max(1, min(MAX_ENTRIES_PER_READ, (batch_max - records) // per_entry))


def smoothed_pace(previous: float, records: int, seconds: float, batch_max: int) -> float:
    """A drain's pace (records/s while it writes) after a batch of `records` took `seconds`.

    Measured on full enough batches only (at least half of WRITE_BATCH_MAX): a
    small one, flushed on time under a light load, says little about what it can do.
    """
    if records * 2 < batch_max:
        return previous
    pace = records / max(1e-3, seconds)
    return pace if not previous else (1 - SMOOTHING) * previous + SMOOTHING * pace


def pace_to_publish(before: Backlog, now: Backlog, seconds: float) -> float | None:
    """Records persisted per second between two looks, while there was work (backpressure's Retry-After)."""
    persisted = (now.done - before.done) / seconds
    return persisted if persisted > 0 and now.depth > 0 else None


def is_burst(before: Backlog, now: Backlog, seconds: float, drain_pace: float, batch_max: int,
             high_water: int) -> bool:
    """True while writes arrive faster than the drains write, and the queue is deep and growing.

    Measured in make bench: writes paced at half the drains' unloaded rate were
    taken for a burst (their pace measured on small batches, or slowed by the
    web's load) and the lag went to 10 s. So a burst is also a backlog of more
    than YIELD_BACKLOG_S of the drains' work: at a load they keep up with, the
    queue never gets that deep. Past half the high-water mark it is no burst to
    wait out: the drains must write.
    """
    pace = drain_pace * max(1, now.alive)
    arriving = (now.accepted - before.accepted) / seconds
    return (arriving > YIELD_PACE * pace and now.depth > before.depth
            and now.depth >= max(YIELD_DEPTH * batch_max, YIELD_BACKLOG_S * pace)
            and now.depth < high_water // 2)


def should_pause(before: Backlog, now: Backlog, seconds: float, drain_pace: float, batch_max: int,
                 high_water: int, lag_budget: float) -> bool:
    """True if a drain should leave the CPUs to the web for now: a young burst, within DRAIN_LAG_BUDGET_S."""
    if not lag_budget or not drain_pace:
        return False
    return (is_burst(before, now, seconds, drain_pace, batch_max, high_water)
            and now.age_s < lag_budget * YIELD_AGE_SHARE)


def next_backoff(pause: float) -> float:
    """The wait before the next try of a batch MySQL did not take: doubled, at most MAX_BACKOFF_S."""
    return min(pause * 2, MAX_BACKOFF_S)


def stay_idle(result: dict[str, Any], ran_s: float, task_s: float, idle_task_s: float) -> bool:
    """True if a drain round that wrote nothing should be followed by another in the same task.

    An idle stack used to add a task per slot every DRAIN_TASK_SECONDS (two every
    5 s, ~35,000 a day), and Flower keeps 10,000: the drains that wrote anything
    scrolled away within hours. Idle, a task stays up to DRAIN_IDLE_TASK_SECONDS;
    a round that wrote, set something aside, waited on a server or was told to
    stop ends it as before.
    """
    return bool(result["status"] == "ok" and result["rows"] == 0 and result["dead"] == 0
                and ran_s + task_s <= idle_task_s)
