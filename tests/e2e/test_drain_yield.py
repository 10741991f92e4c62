"""During a burst the drain leaves the CPUs to the web, within DRAIN_LAG_BUDGET_S; at a pace it keeps up with, never.

Against the test Redis: the queue's counters are set as a burst (or a steady
load) would leave them, and a drain decides.
"""
import dataclasses
import time

import pytest

from tasks.drain import YIELD_CHECK_S, Drainer
from webapp.storage import keys
from webapp.storage.services import Services


@pytest.fixture()
def drainer(settings, fresh, rds):
    svc = Services(dataclasses.replace(settings, drain_lag_budget=5.0), role="worker")
    drain = Drainer(svc, 0, "token", 5)
    drain._pace = 10_000.0  # records/s it measured while writing batches
    rds.set(keys.DEPTH, 10_000)  # ten full batches queued
    rds.zadd(keys.ALIVE, {"d1": int(time.time() * 1000)})  # one drain alive
    yield drain, rds
    svc.close()


def arrivals(drain, rds, records):
    """One look, then `records` accepted (and queued) within the next look's interval: does the drain pause?"""
    drain._next_look = 0
    drain.yielding()  # the first look only measures
    rds.incrby(keys.ACCEPTED, records)
    rds.incrby(keys.DEPTH, records // 2)  # the queue grows: the drains do not keep up
    time.sleep(YIELD_CHECK_S)
    drain._next_look = 0
    return drain.yielding()


def test_the_drains_publish_their_pace_for_backpressures_retry_after(drainer):
    drain, rds = drainer
    rds.xadd(keys.STREAM, {"w": "x"})
    drain._next_look = 0
    drain.look()
    rds.hincrby(keys.STATS, "persisted_items", 2_500)  # 2,500 records persisted within the next look
    time.sleep(YIELD_CHECK_S)
    drain._next_look = 0
    drain.look()
    assert 5_000 < float(rds.get(keys.DRAIN_RATE)) <= 10_000 and 0 < rds.ttl(keys.DRAIN_RATE) <= 10


def test_a_young_burst_arriving_faster_than_the_drain_writes_makes_it_pause(drainer):
    drain, rds = drainer
    rds.xadd(keys.STREAM, {"w": "x"})  # the oldest queued write: just now
    assert arrivals(drain, rds, 5_000)  # 20,000 records/s against 10,000 written


def test_a_steady_load_the_drain_keeps_up_with_never_makes_it_pause(drainer):
    drain, rds = drainer
    rds.xadd(keys.STREAM, {"w": "x"})
    assert not arrivals(drain, rds, 2_000)  # 8,000 records/s: within what it writes


def test_a_backlog_shorter_than_a_second_of_the_drains_work_never_makes_it_pause(drainer):
    drain, rds = drainer
    rds.set(keys.DEPTH, 3_000)  # three full batches: a third of a second at 10,000 records/s
    rds.xadd(keys.STREAM, {"w": "x"})
    assert not arrivals(drain, rds, 5_000)  # arriving fast, growing, but within the lag promise


def test_past_its_lag_budget_the_drain_takes_what_it_needs(drainer):
    drain, rds = drainer
    old = int(time.time() * 1000) - 4_500  # older than 0.8 x 5 s
    rds.xadd(keys.STREAM, {"w": "x"}, id=f"{old}-0")
    assert not arrivals(drain, rds, 50_000)


def test_without_a_lag_budget_the_drain_never_pauses(drainer, settings):
    drain, rds = drainer
    drain.settings = dataclasses.replace(settings, drain_lag_budget=0)
    rds.xadd(keys.STREAM, {"w": "x"})
    assert not arrivals(drain, rds, 50_000)
