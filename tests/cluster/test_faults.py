"""Faults across hosts, under load from writers that retry with their Idempotency-Key, checked Jepsen-style.

Every test: writers post through both web hosts; the fault plays out; the
cluster is made whole again; the writers stop; the queue drains; then the
checker: every 202 in MySQL exactly once (items by their value, events by a
marker), every receipt of a 202 answering, no key gone back to an older value.
What each fault cost in each durability mode goes to var/test/cluster-results.json
(docs/guarantees.md states it).
"""
import time

import pytest

from deploy.processes import wait_for
from tests.cluster.cluster import check


def play(cluster, results, name, fault, writers_threads=6):
    """Run writers, `fault(cluster, writers)`, heal; check and record; return the check."""
    from tests.cluster.cluster import Announcements, Writers

    tag = f"{cluster.mode}-{name}-{time.time_ns()}"
    heard = Announcements(cluster)
    writers = Writers([cluster.url("web1"), cluster.url("web2")], tag, threads=writers_threads)
    try:
        wait_for(lambda: len(writers.accepted) > 20, timeout=30, message="writes to be accepted")
        fault(cluster, writers)
        cluster.healthy_again()
        since = time.monotonic()
        wait_for(lambda: writers.last_202 > since, timeout=60, message="writes accepted again after the fault")
        time.sleep(2)
    finally:
        writers.finish()
        heard.close()
    cluster.wait_drained()
    found = check(cluster, writers)
    # How long after the Sentinels began a failover the last lost write was answered 202 (None: none lost).
    began = heard.first("+try-failover")
    last = found.pop("last_lost_202")
    found["lost_202_after_failover_began_s"] = round(last - began, 2) if last and began else None
    results.setdefault(cluster.mode, {})[name] = {k: v for k, v in found.items() if k != "examples"}
    return found


def moved(cluster, old, timeout=60):
    wait_for(lambda: cluster.primary_host() != old, timeout=timeout, interval=0.2, message="the Sentinels to fail over")


# --- the faults --------------------------------------------------------------------------


def primary_killed_and_restarted(cluster, writers):
    """SIGKILL of the primary's Redis, back a second later (as supervisord restarts it): no failover."""
    server = cluster.redis[cluster.primary_host()]
    server.kill()
    time.sleep(1)
    server.start()


def primary_host_lost(cluster, writers):
    """The primary's host dies (SIGKILL, not back until the Sentinels have failed over)."""
    old = cluster.primary_host()
    cluster.redis[old].kill()
    moved(cluster, old)


def planned_failover(cluster, writers):
    """SENTINEL FAILOVER, the procedure docs/scaling.md gives for maintenance."""
    old = cluster.primary_host()
    cluster.sentinel(1).execute_command("SENTINEL", "FAILOVER", "spillway")
    moved(cluster, old)


def split_brain(cluster, writers):
    """The primary cut off from the Sentinels, its replica, one web host and the drains, reachable by web1."""
    old = cluster.primary_host()
    others = [h for h in ("redis1", "redis2") if h != old]
    cluster.net.cut(old, [*others, "s1", "s2", "s3", "web2", "drain1", "drain2"])
    moved(cluster, old)
    time.sleep(3)  # what the cut-off primary still takes from web1 in the meantime is what this measures


def web_host_cut_off(cluster, writers):
    """web1 loses Redis (and its Sentinels): its writes answer 503 at once, clients go to web2."""
    cluster.net.cut("web1", ["redis1", "redis2", "s1", "s2", "s3"])
    time.sleep(8)


def drain_host_killed(cluster, writers):
    """drain1's host dies mid-batch (everything on it SIGKILLed); the other drain host takes over."""
    cluster.kill_host("drain1")
    time.sleep(8)


def mysql_slow(cluster, writers):
    """200 ms of round trip added to every MySQL conversation, for a while."""
    cluster.delay(0.1)
    time.sleep(10)


# --- replica mode: nothing lost, nothing doubled, whatever the fault ---------------------------------

@pytest.mark.parametrize("fault", [primary_killed_and_restarted, primary_host_lost, planned_failover, split_brain,
                                   web_host_cut_off, drain_host_killed, mysql_slow], ids=lambda f: f.__name__)
def test_replica_mode_loses_and_doubles_nothing(replica_cluster, results, fault):
    found = play(replica_cluster, results, fault.__name__, fault)
    assert found["writes"] > 40, found
    assert (found["lost"], found["doubled"], found["went_back"], found["receipts_missing"]) == (0, 0, 0, 0), found


# --- replica mode: a retry after replication_timeout, across a failover -----------------------------


def test_replica_mode_a_retry_after_a_replication_timeout_across_a_failover_is_stored_once(replica_cluster, results):
    """The write reaches the primary alone (503 replication_timeout) and the drain persists it; the primary's
    host dies, and the replica that never had the write, nor its Idempotency-Key, takes over; the client
    retries as the docs say (same key, same body). Before, the retry was stored a second time."""
    import json
    import uuid

    import requests

    from tests.cluster.cluster import API_KEY, marker_count

    cluster = replica_cluster
    old = cluster.primary_host()
    replica = next(h for h in ("redis1", "redis2") if h != old)
    marker = f"retry-{uuid.uuid4()}"
    body = json.dumps({"events": [{"name": "c", "data": {"m": marker}}]})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
               "Idempotency-Key": str(uuid.uuid4())}

    def post(host):
        try:
            return requests.post(cluster.url(host) + "/api/v1/events", data=body, headers=headers, timeout=10)
        except requests.RequestException:
            return None

    cluster.net.cut(replica, [old])  # the replica stops hearing the primary; the Sentinels still see both
    try:
        first = post("web1")
        assert first is not None and first.status_code == 503, first.text if first is not None else None
        assert first.json()["error"]["code"] == "replication_timeout", first.text
        wait_for(lambda: marker_count(cluster, marker) == 1, timeout=30, message="the drain to persist it")
        cluster.redis[old].kill()  # the primary's host dies
        cluster.net.heal(replica)
        moved(cluster, old)
        # It comes back (as supervisord restarts it) and the Sentinels make it a replica of the new primary,
        # which resyncs it: its copy of the write and of the key is gone. Until then the new primary, with
        # no replica, refuses writes (min-replicas-to-write 1).
        cluster.redis[old].start()
        answer = None
        for attempt in range(120):  # the client's retries, to either web host
            answer = post(("web1", "web2")[attempt % 2])
            if answer is not None and answer.status_code == 202:
                break
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 202, answer.text if answer is not None else None
    finally:
        cluster.healthy_again()
    cluster.wait_drained()
    status = requests.get(f"{cluster.url('web2')}/api/v1/writes/{answer.json()['write_id']}",
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    count = marker_count(cluster, marker)
    results.setdefault("replica", {})["retry_after_replication_timeout"] = {"stored": count}
    assert count == 1  # before: 2 (the retry's write stored again)
    assert status.status_code == 200 and status.json()["status"] == "persisted", status.text


# --- aof mode: nothing lost but what async replication cannot save -----------------------------------

@pytest.mark.parametrize("fault", [primary_killed_and_restarted, planned_failover], ids=lambda f: f.__name__)
def test_aof_mode_loses_nothing_to_a_killed_redis_or_a_planned_failover(aof_cluster, results, fault):
    found = play(aof_cluster, results, fault.__name__, fault)
    assert found["writes"] > 40, found
    assert (found["lost"], found["doubled"], found["went_back"], found["receipts_missing"]) == (0, 0, 0, 0), found


@pytest.mark.parametrize("fault", [primary_host_lost, split_brain], ids=lambda f: f.__name__)
def test_aof_mode_loss_on_a_lost_or_cut_off_primary_is_bounded(aof_cluster, results, fault):
    # Replication is asynchronous in aof mode: what the old primary took and its replica had not yet
    # received is gone when the replica takes over. A cut-off primary takes writes for at most
    # min-replicas-max-lag (5 s) after its replica last answered; a dead one, its last moments'.
    found = play(aof_cluster, results, fault.__name__, fault)
    assert found["writes"] > 40, found
    assert found["doubled"] == 0, found  # a lost write can leave a hot key at the write before it: not checked
    assert found["lost"] <= found["records"] // 4, found  # bounded; the figure is stated in docs/guarantees.md
    # The bound: once the Sentinels begin a failover (+try-failover), no web writes to the old primary (writes
    # wait for +switch-master, then go to the new one). Only what it took before that can be lost. Before the
    # fix, web1 went on writing to the cut-off primary until min-replicas-max-lag refused it, 3 s later.
    late = found["lost_202_after_failover_began_s"]
    assert late is None or late < 1.0, found
