"""The drain's rules (tasks/pacing.py), alone: batch make-up, pace, pauses during a burst, backoff."""
from dataclasses import dataclass

import pytest

from tasks import pacing
from webapp.storage.stream import Backlog


@dataclass
class E:
    count: int


def test_a_batch_takes_whole_entries_while_they_fit_and_at_least_one():
    taken, left = pacing.take([E(400), E(400), E(300), E(10)], 1000)
    assert [e.count for e in taken] == [400, 400] and [e.count for e in left] == [300, 10]
    taken, left = pacing.take([E(1500), E(1)], 1000)  # an entry larger than a batch still goes alone
    assert [e.count for e in taken] == [1500] and len(left) == 1
    assert pacing.take([], 1000) == ([], [])
    assert [e.count for e in pacing.take([E(500), E(500)], 1000)[0]] == [500, 500]  # exactly full


def test_reads_ask_for_as_many_entries_as_fill_the_batch():
    assert pacing.entries_to_read(0, 0, 1000) == 1000 // pacing.GUESSED_RECORDS_PER_ENTRY
    assert pacing.entries_to_read(100, 1, 1000) == 9  # 100 records an entry: 9 more fill it
    assert pacing.entries_to_read(999, 999, 1000) == 1
    assert pacing.entries_to_read(0, 0, 100_000) == pacing.MAX_ENTRIES_PER_READ


def test_a_drains_pace_is_measured_on_full_enough_batches_and_smoothed():
    assert pacing.smoothed_pace(0.0, 1000, 0.1, 1000) == pytest.approx(10_000)
    assert pacing.smoothed_pace(10_000, 100, 0.001, 1000) == 10_000  # a small batch says little
    assert pacing.smoothed_pace(10_000, 1000, 0.05, 1000) == pytest.approx(0.8 * 10_000 + 0.2 * 20_000)


def look(depth, accepted, done, age_s=1.0, alive=1):
    return Backlog(depth=depth, age_s=age_s, accepted=accepted, alive=alive, done=done)


def test_the_pace_published_is_what_was_persisted_while_there_was_work():
    assert pacing.pace_to_publish(look(500, 0, 1000), look(400, 0, 3000), 0.5) == 4000
    assert pacing.pace_to_publish(look(500, 0, 1000), look(0, 0, 1500), 0.5) is None  # the queue ran dry
    assert pacing.pace_to_publish(look(500, 0, 1000), look(500, 0, 1000), 0.5) is None


BURST = dict(seconds=0.25, drain_pace=4000.0, batch_max=1000, high_water=500_000, lag_budget=5.0)


def test_a_young_burst_arriving_faster_than_the_drains_write_pauses_them():
    before, now = look(10_000, 0, 0), look(14_000, 6_000, 500, age_s=1.0)  # 24,000/s in, deep and growing
    assert pacing.should_pause(before, now, **BURST)
    assert not pacing.should_pause(before, look(14_000, 6_000, 500, age_s=4.5), **BURST)  # past 0.8 x budget
    assert not pacing.should_pause(before, now, **{**BURST, "lag_budget": 0.0})  # pausing is off
    assert not pacing.should_pause(before, now, **{**BURST, "drain_pace": 0.0})  # no pace measured yet


@pytest.mark.parametrize("now, why", [
    (look(9_000, 500, 1500), "the queue shrinks"),
    (look(11_000, 800, 500), "writes arrive slower than the drains write"),
    (look(1_500, 6_000, 500), "less than a second of the drains' work is queued"),
    (look(300_000, 6_000, 500), "past half the high-water mark the drains must write"),
])
def test_no_pause_at_a_load_the_drains_keep_up_with(now, why):
    assert not pacing.should_pause(look(10_000, 0, 0) if now.depth < 300_000 else look(290_000, 0, 0), now,
                                   **BURST), why


def test_more_live_drains_make_a_burst_harder_to_call():
    before, now = look(10_000, 0, 0), look(14_000, 6_000, 500, alive=8)  # 8 drains: 32,000/s between them
    assert not pacing.is_burst(before, now, 0.25, 4000.0, 1000, 500_000)


def test_backoff_doubles_up_to_its_cap():
    waits = [pacing.FIRST_BACKOFF_S]
    for _ in range(8):
        waits.append(pacing.next_backoff(waits[-1]))
    assert waits[:4] == [0.2, 0.4, 0.8, 1.6] and max(waits) == pacing.MAX_BACKOFF_S


def _round(**changes):
    return {"slot": 0, "rows": 0, "dead": 0, "status": "ok", **changes}


def test_an_idle_round_stays_in_its_task_until_the_idle_time_is_up():
    assert pacing.stay_idle(_round(), ran_s=5, task_s=5, idle_task_s=60)
    assert pacing.stay_idle(_round(), ran_s=55, task_s=5, idle_task_s=60)
    assert not pacing.stay_idle(_round(), ran_s=56, task_s=5, idle_task_s=60)  # the next round would run past it
    assert not pacing.stay_idle(_round(), ran_s=5, task_s=5, idle_task_s=5)  # DRAIN_IDLE_TASK_SECONDS off


def test_a_round_that_did_something_or_was_stopped_hands_over():
    assert not pacing.stay_idle(_round(rows=1), ran_s=5, task_s=5, idle_task_s=60)
    assert not pacing.stay_idle(_round(dead=1), ran_s=5, task_s=5, idle_task_s=60)
    for status in ("worker shutting down", "slot lost", "redis unavailable", "mysql unavailable"):
        assert not pacing.stay_idle(_round(status=status), ran_s=5, task_s=5, idle_task_s=60)
