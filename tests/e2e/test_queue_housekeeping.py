"""The queue looks after itself: dead consumers forgotten, stale entries reclaimed in order,
unreadable entries set aside without leaving pending cache entries, late replays answered."""
import dataclasses
import time

import pytest

from webapp.storage import keys
from webapp.storage.leases import worker_name
from webapp.storage.records import Item
from webapp.storage.services import Services


@pytest.fixture()
def svc(svc):
    """conftest's svc, with the drain's consumer group made."""
    svc.stream.ensure_group()
    return svc


def test_consumers_of_dead_workers_are_forgotten_but_never_one_that_holds_entries(svc, rds):
    svc.queue.append([Item("a", "{}")], "key1")
    rds.xreadgroup(keys.GROUP, "dead:1:0", {keys.STREAM: ">"}, count=10)  # holds the entry
    rds.execute_command("XGROUP", "CREATECONSUMER", keys.STREAM, keys.GROUP, "dead:2:0")  # holds nothing
    time.sleep(0.05)
    assert svc.stream.forget_idle_consumers(0.01) == ["dead:2:0"]
    assert [c["name"] for c in rds.xinfo_consumers(keys.STREAM, keys.GROUP)] == [b"dead:1:0"]


def test_stale_entries_behind_a_long_list_of_busy_ones_are_reclaimed(settings, fresh, rds):
    svc = Services(dataclasses.replace(settings, write_claim_idle=2.0), role="worker")
    svc.stream.ensure_group()
    for n in range(3000):
        svc.queue.append([Item(f"busy{n}", "{}")], "key1")
    rds.xreadgroup(keys.GROUP, "live:1:0", {keys.STREAM: ">"}, count=3000)  # a live worker's batch
    for n in range(40):
        svc.queue.append([Item(f"stale{n}", "{}")], "key1")
    rds.xreadgroup(keys.GROUP, "dead:1:0", {keys.STREAM: ">"}, count=40)  # a worker that then died
    time.sleep(2.5)
    busy = [entry_id for entry_id, _ in rds.xrange(keys.STREAM, count=3000)]
    for first in range(0, 3000, 500):  # the live worker is still at it: its entries are not idle
        rds.xclaim(keys.STREAM, keys.GROUP, "live:1:0", 0, busy[first:first + 500], justid=True)
    # XAUTOCLAIM scans at most 10 x COUNT entries a call; from "0-0" every time, it never got past
    # the busy ones to the stale entries behind them.
    claimed = []
    for _ in range(60):
        claimed += [e.records[0].key for e in svc.stream.claim_stale("me:1:0", 10)]
    assert sorted(claimed) == sorted(f"stale{n}" for n in range(40))
    svc.close()


def test_an_unreadable_entry_is_set_aside_and_its_pending_cache_entry_dropped(svc, rds):
    version = int(time.time() * 1_000_000)
    rds.set(keys.item("k"), f"{version}|1|{{\"v\":1}}")  # what accept.lua left for it
    rds.xadd(keys.STREAM, {"w": "w_" + "0" * 26, "k": "items", "n": 2, "v": version, "t": 1, "b": 10,
                           "r": b"k\x00{\"v\":1}"})  # says 2 records, holds 1: unreadable
    assert svc.stream.read_new("c:1:0", 10, 100) == []
    assert rds.xlen(keys.UNREADABLE) == 1 and rds.xlen(keys.STREAM) == 0
    assert rds.get(keys.item("k")) is None  # reads see MySQL again, not a write that will never land


def test_a_replay_answers_its_receipt_even_after_the_clients_deadline(svc, rds):
    receipt = svc.queue.append([Item("k", "{}")], "key1")
    # The coalescer resends a write whose reply was lost; Redis runs it after the deadline.
    args = [receipt.write_id, "items", 1, b"k\x00{}", 1000, 1, "", 0, 0, 0, 600, keys.ITEM, 1 << 28, keys.GROUP, "", 320]
    script_keys = [keys.STREAM, keys.DEPTH, keys.VERSION, keys.receipt(receipt.write_id), "", "", keys.BYTES,
                   keys.EXPIRY, keys.ACCEPTED, keys.DRAIN_RATE, keys.STATS]
    result = svc.queue._accept(keys=script_keys, args=args)
    assert result[0] == b"ok" and result[3] == b"replay"  # before: 'expired', a 503 for a queued write
    assert rds.xlen(keys.STREAM) == 1


def test_a_stopping_flag_belongs_to_one_process_not_to_a_pid(svc):
    leases = svc.leases
    me = worker_name()
    host, pid, _ = me.split(":")
    leases.mark_stopping(f"{host}:{pid}:1")  # a process that had this pid before (a restarted container)
    assert not leases.stopping(me)
    leases.mark_stopping(me)
    assert leases.stopping(me)
