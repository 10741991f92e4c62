"""Memory bounded, the drain never wedges; Redis "not now" answers are 503s, never 500s.

A full Redis used to wedge the drain: the slot lease (SET NX), the heartbeat
(ZADD) and the acknowledgement's first write (HINCRBY) were refused with OOM,
so the queue never drained after MySQL returned until someone raised maxmemory.
Then, with those allowed: Celery's broker in the same Redis could deliver no
drain task (kombu's writes are refused), slot leases with a TTL were evicted as
soon as they were taken, and XGROUP CREATE was refused; so a drain that was not
already running when Redis filled never started.
"""
import shutil
import signal
import time

import pytest
import redis as redis_lib
import requests

from deploy.processes import wait_for
from tests.e2e.helpers import (
    API_KEY,
    FAST,
    HEADERS,
    assert_error,
    get,
    item_url,
    mysql_items,
    post_items,
    put_row,
    wait_drained,
    wait_receipt,
)


@pytest.fixture()
def small_redis(rds):
    """Shrinks maxmemory on demand; junk (keys without TTL) and the old limit are cleared afterwards."""
    old = rds.config_get("maxmemory")["maxmemory"]

    def shrink(headroom):
        rds.config_set("maxmemory", int(rds.info("memory")["used_memory"]) + headroom)

    yield shrink
    rds.config_set("maxmemory", old)
    for key in rds.scan_iter("junk:*", count=1000):
        rds.delete(key)


def fill(rds):
    """Keys without a TTL (nothing Redis may evict) until it refuses even a tiny one with OOM."""
    n = 0
    for size in (4096, 256, 16, 1):
        while True:
            try:
                rds.set(f"junk:{n}", "x" * size)
            except redis_lib.exceptions.OutOfMemoryError:
                break
            n += 1
    return n


def test_a_full_redis_refuses_writes_with_503_but_serves_reads_and_keeps_receipts(web, db, rds, small_redis):
    put_row(db, "cached", {"v": 1})
    assert get(item_url(web.url, "cached")).status_code == 200
    receipt = post_items(web, [("k", {"v": 1})]).json()
    assert rds.pttl(f"spillway:write:{receipt['write_id']}") == -1  # no TTL: Redis can never evict it
    small_redis(1 << 20)
    fill(rds)
    r = post_items(web, [("k2", {"v": 2})])
    assert_error(r, 503, "queue_unavailable")  # before: 500 internal_error, no Retry-After
    assert get(item_url(web.url, "cached")).json()["data"] == {"v": 1}
    assert get(item_url(web.url, "k")).json()["data"] == {"v": 1}  # the pending write too
    assert get(f"{web.url}/api/v1/writes/{receipt['write_id']}").json()["status"] == "queued"
    ready = get(web.url + "/readyz", headers=HEADERS)
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "full"
    assert ready.json()["status"] == "degraded"


def test_mysql_hung_while_writes_fill_redis_every_202_lands_with_no_operator_action(
        web, db, rds, start_worker, servers_restored, small_redis):
    start_worker(**FAST)
    wait_for(lambda: rds.zcard("spillway:drain:alive"), message="a drain to start")
    servers_restored.mariadb.signal(signal.SIGSTOP)  # hung: accepts nothing, answers nothing
    small_redis(6 << 20)
    accepted, refused, n = {}, 0, 0
    started = time.monotonic()
    while refused < 20 and time.monotonic() - started < 120:
        items = [(f"f{n:05d}-{i:02d}", {"n": n, "i": i, "pad": "p" * 2000}) for i in range(24)]
        r = post_items(web, items)
        if r.status_code == 202:
            accepted[r.json()["write_id"]] = items
        else:
            assert_error(r, 503, r.json()["error"]["code"])  # queue_unavailable (OOM) or backpressure
            refused += 1
        n += 1
    assert accepted and refused >= 20
    fill(rds)  # full to the last byte, whatever the writes left: past maxmemory, keys with a TTL are evicted
    time.sleep(8)  # drain tasks reach their hand-over while Redis is full
    servers_restored.mariadb.signal(signal.SIGCONT)
    wait_drained(rds, timeout=180)
    stored = mysql_items(db)
    for write_id, items in accepted.items():
        assert wait_receipt(web, write_id)["status"] == "persisted"  # the receipt still answers
        assert all(stored[k] == d for k, d in items)
    assert len(stored) == 24 * len(accepted)


def test_a_worker_started_on_a_full_redis_drains_it_once_mysql_answers(
        web, db, rds, start_worker, servers_restored, small_redis):
    # No drain task runs while Redis fills up: no worker at all, and MySQL hung too. Before
    # Celery had a broker of its own, a worker could not even take its first task from a full
    # Redis (kombu's bindings and unacked set are plain writes), so nothing ever drained it.
    servers_restored.mariadb.signal(signal.SIGSTOP)
    small_redis(4 << 20)
    accepted, n = {}, 0
    while True:
        items = [(f"g{n:05d}-{i:02d}", {"n": n, "i": i, "pad": "p" * 2000}) for i in range(24)]
        r = post_items(web, items)
        if r.status_code != 202:
            assert_error(r, 503, "queue_unavailable")  # Redis is full (OOM)
            break
        accepted[r.json()["write_id"]] = items
        n += 1
    assert len(accepted) > 10
    fill(rds)  # full to the last byte: even a one-byte key is refused
    # (its byte bound fits the shrunken maxmemory, or its start-up check would refuse it)
    start_worker(WRITE_QUEUE_HIGH_WATER_BYTES=1 << 20, **FAST)
    wait_for(lambda: rds.zcard("spillway:drain:alive"), timeout=60, message="a drain task to start on the full Redis")
    time.sleep(3)  # the drain retries MySQL, which still answers nothing
    assert int(rds.get("spillway:queue:depth")) == 24 * len(accepted)
    servers_restored.mariadb.signal(signal.SIGCONT)
    wait_drained(rds, timeout=120)
    stored = mysql_items(db)
    assert len(stored) == 24 * len(accepted)
    for write_id, items in accepted.items():
        assert wait_receipt(web, write_id)["status"] == "persisted"
        assert all(stored[k] == d for k, d in items)


def test_receipts_and_idempotency_keys_carry_no_ttl_and_go_when_their_time_is_up(fresh, rds, start_web,
                                                                                  start_worker):
    web = start_web(IDEMPOTENCY_CACHE_S=3)
    r = requests.post(web.url + "/api/v1/items", json={"items": [{"key": "k", "data": {}}]}, timeout=10,
                      headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "once"})
    write_id = r.json()["write_id"]
    idem = next(iter(rds.scan_iter("spillway:idem:*")))
    assert rds.pttl(f"spillway:write:{write_id}") == -1 and rds.pttl(idem) == -1  # Redis can never evict them
    assert rds.zscore("spillway:expiry", idem) / 1000 == pytest.approx(time.time() + 3, abs=2)
    start_worker(**FAST)
    assert wait_receipt(web, write_id)["status"] == "persisted"  # answered from MySQL now
    assert not rds.exists(f"spillway:write:{write_id}")
    wait_for(lambda: not rds.exists(idem), timeout=20, message="the keeper to delete the key")


def test_a_replica_that_lost_its_primary_answers_503_not_500(fresh, start_web, scratch_redis):
    from deploy.processes import free_port

    url, _ = scratch_redis("--appendonly", "yes", "--maxmemory-policy", "volatile-ttl",
                           "--replicaof", "127.0.0.1", str(free_port()), "--replica-serve-stale-data", "no")
    web = start_web(REDIS_URL=url)
    assert_error(post_items(web, [("k", {})]), 503, "queue_unavailable")  # MASTERDOWN (before: 500)
    assert_error(get(item_url(web.url, "k")), 503, "cache_unavailable")


def test_a_redis_that_cannot_write_its_files_answers_503_not_500(fresh, start_web, scratch_redis, tmp_path):
    url, _ = scratch_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "3600 1",
                           "--enable-protected-configs", "yes")
    web = start_web(REDIS_URL=url)
    client = redis_lib.Redis.from_url(url)
    gone = tmp_path / "gone"
    gone.mkdir()
    client.config_set("dir", str(gone))
    shutil.rmtree(gone)
    client.bgsave()  # the snapshot fails: its directory is gone

    def refuses_writes():
        try:
            client.set("probe", 1)
        except redis_lib.ResponseError as err:
            return str(err).startswith("MISCONF")
        return False

    wait_for(refuses_writes, timeout=10, message="Redis to refuse writes with MISCONF")
    assert_error(post_items(web, [("k", {})]), 503, "queue_unavailable")  # before: 500 internal_error
    client.close()
