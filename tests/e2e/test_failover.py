"""Redis failover with Sentinel, and the durability modes: what a 202 promises when the primary dies.

A real primary, a replica and three Sentinels (redis-server --sentinel), all with
a password. Writers post 24-item batches with Idempotency-Keys, retrying each
batch until it gets a 202; the primary is SIGKILLed mid-stream and, as
supervisord would, started again once the Sentinels have promoted the replica.
"""
import json
import shutil
import threading
import time
import uuid

import pytest
import redis as redis_lib
import requests

from deploy.processes import free_port, wait_for
from deploy.servers import Redis, RedisReplica, Sentinel
from tests.e2e.helpers import API_KEY, DEPTH, FAST, VAR, flower_get, get, mysql_items

PASSWORD = "failover-test-pw"


class HA:
    """A primary, a replica and three Sentinels under var/test/ha."""

    def __init__(self):
        self.var = VAR / "ha"
        shutil.rmtree(self.var, ignore_errors=True)
        port = free_port()
        self.primary = Redis(self.var, port, password=PASSWORD, keep_config=True)
        self.replica = RedisReplica(self.var, free_port(), password=PASSWORD, replica_of=port, keep_config=True)
        self.sentinels = [Sentinel(self.var, free_port(), n + 1, port, PASSWORD, down_after_ms=1000)
                          for n in range(3)]
        for server in (self.primary, self.replica, *self.sentinels):
            server.start()
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://:{PASSWORD}@{hosts}/spillway/0"
        self.sentinel = redis_lib.Redis(port=self.sentinels[0].port, password=PASSWORD)
        wait_for(self.replica_known, timeout=40, interval=0.5, message="the Sentinels to know the replica")

    def primary_port(self):
        return int(self.sentinel.sentinel_get_master_addr_by_name("spillway")[1])

    def replica_known(self):
        replicas = self.sentinel.sentinel_slaves("spillway")
        return any(not r.get("is_disconnected") and r.get("master-link-status") == "ok" for r in replicas)

    def client(self):
        return redis_lib.Redis(port=self.primary_port(), password=PASSWORD)

    def stop(self):
        self.sentinel.close()
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()


@pytest.fixture()
def ha(fresh):
    setup = HA()
    yield setup
    setup.stop()


class Writers:
    """Threads posting 24-item batches, each with its own Idempotency-Key, retried until it gets a 202."""

    def __init__(self, url, threads=8):
        self.url = url
        self.accepted, self.last_202 = {}, 0.0
        self.unexpected = []  # answers other than 202 or a retryable 503: asserted on in the test's thread
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(threads)]
        for t in self.threads:
            t.start()

    def write(self, n):
        session = requests.Session()
        batch = 0
        while not self.stop.is_set():
            items = [{"key": f"f{n}-{batch:05d}-{i:02d}", "data": {"n": n, "b": batch, "i": i}} for i in range(24)]
            body, key = json.dumps({"items": items}), str(uuid.uuid4())
            while not self.stop.is_set():  # the same request until it is accepted: never a second copy
                try:
                    r = session.post(self.url + "/api/v1/items", data=body, timeout=10, headers={
                        "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
                        "Idempotency-Key": key})
                except requests.RequestException:
                    time.sleep(0.2)
                    continue
                if r.status_code == 202:
                    with self.lock:
                        self.accepted[key] = items
                        self.last_202 = time.monotonic()
                    break
                # Only "not now" answers may come: queue_unavailable or replication_timeout, with Retry-After.
                # (An assert here would only end this thread, unseen: the test asserts on the list.)
                if r.status_code != 503 or r.json()["error"]["code"] not in (
                        "queue_unavailable", "replication_timeout", "cache_unavailable"):
                    with self.lock:
                        self.unexpected.append((r.status_code, r.text[:300]))
                    return
                time.sleep(0.2)
            batch += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def run_failover(ha, start_web, start_worker, start_flower, db, durability):
    """Write, kill the primary, keep writing; return (writers, seconds until the next 202, lost records)."""
    env = {"REDIS_URL": ha.url, "WRITE_DURABILITY": durability, **FAST}
    web = start_web(**env)
    start_worker(**env)
    flower = start_flower(REDIS_URL=ha.url)
    writers = Writers(web.url)
    time.sleep(3)
    old = ha.primary_port()
    ha.primary.kill()  # SIGKILL: the host died
    killed = time.monotonic()
    wait_for(lambda: ha.primary_port() != old, timeout=30, interval=0.2, message="the Sentinels to fail over")
    ha.primary.start()  # back, as supervisord would start it: the Sentinels make it a replica of the new primary
    wait_for(lambda: writers.last_202 > killed + 0.5, timeout=30, interval=0.2,
             message="writes to be accepted again")
    back_after = writers.last_202 - killed
    time.sleep(3)
    writers.finish()
    assert writers.unexpected == []
    # The drain (Celery, its leases, its consumers) carries on by itself on the new primary.
    client = ha.client()
    wait_for(lambda: int(client.get(DEPTH) or 0) == 0, timeout=120, interval=0.5, message="the queue to drain")
    stored = mysql_items(db)
    expected = {item["key"]: item["data"] for items in writers.accepted.values() for item in items}
    lost = [k for k in expected if stored.get(k) != expected[k]]
    assert set(stored) <= set(expected)  # nothing that was not accepted, nothing twice (one row per key)
    since = time.time() - (time.monotonic() - killed)

    def drain_tasks_after_the_failover():
        tasks = flower_get(flower.url + "/api/tasks", taskname="spillway.drain") or {}
        return any((t.get("received") or 0) > since + 5 for t in tasks.values())

    wait_for(drain_tasks_after_the_failover, timeout=60, interval=1, message="Flower to list drain tasks again")
    client.close()
    return writers, back_after, lost


def test_replica_mode_loses_no_202_when_the_primary_is_killed(ha, start_web, start_worker, start_flower, db):
    writers, back_after, lost = run_failover(ha, start_web, start_worker, start_flower, db, "replica")
    (VAR / "failover-replica.txt").write_text(
        f"{len(lost)} of {sum(len(i) for i in writers.accepted.values())} records that got a 202 were lost; "
        f"writes accepted again after {back_after:.1f} s\n")
    assert back_after < 15, back_after  # no restart of web or worker
    assert len(writers.accepted) > 20
    assert lost == []  # every record that got a 202 is in MySQL, exactly once


def test_aof_mode_reports_what_a_failover_can_lose(ha, start_web, start_worker, start_flower, db):
    writers, back_after, lost = run_failover(ha, start_web, start_worker, start_flower, db, "aof")
    assert back_after < 15, back_after
    # Replication is asynchronous: what the old primary acknowledged in its last moments may be gone.
    (VAR / "failover-aof.txt").write_text(
        f"{len(lost)} of {sum(len(i) for i in writers.accepted.values())} records that got a 202 were lost; "
        f"writes accepted again after {back_after:.1f} s\n")
    assert len(lost) <= 24 * 8 * 2  # at most the batches in flight when the primary died


def test_replica_mode_answers_503_replication_timeout_and_a_retry_queues_no_second_copy(fresh, rds, start_web):
    # The test Redis has no replica: WAIT never reaches one.
    web = start_web(WRITE_DURABILITY="replica", WRITE_REPLICA_TIMEOUT=0.3)
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "retry-me"}
    body = {"items": [{"key": "k", "data": {"v": 1}}]}
    first = requests.post(web.url + "/api/v1/items", json=body, headers=headers, timeout=10)
    assert first.status_code == 503 and first.json()["error"]["code"] == "replication_timeout"
    assert "same Idempotency-Key" in first.json()["error"]["message"] and first.headers["Retry-After"]
    again = requests.post(web.url + "/api/v1/items", json=body, headers=headers, timeout=10)
    assert again.status_code == 503 and again.json()["error"]["code"] == "replication_timeout"  # still honest
    assert rds.xlen("spillway:queue") == 1  # one copy: it may still land, and never twice


def test_fsync_mode_refuses_a_redis_that_does_not_fsync_every_write(start_web, scratch_redis):
    url, _ = scratch_redis("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")
    web = start_web(wait=False, REDIS_URL=url, WRITE_DURABILITY="fsync")
    wait_for(lambda: not web.alive(), timeout=30, message="gunicorn to refuse to start")
    assert "appendfsync is everysec" in web.log()
    url, _ = scratch_redis("--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction")
    web = start_web(REDIS_URL=url, WRITE_DURABILITY="fsync")
    r = requests.post(web.url + "/api/v1/items", json={"items": [{"key": "k", "data": {}}]},
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert r.status_code == 202 and r.json()["durability"] == "fsync"
    ready = get(web.url + "/readyz", headers={"Authorization": f"Bearer {API_KEY}"}).json()  # checks: with a key
    assert ready["checks"]["queue"]["durability"] == "fsync"
