"""A day of traffic in Redis: what a persisted write leaves there is bounded, and nothing a client may still use
disappears silently.

Before, every write left its receipt (a hash), an expiry-index entry and its
Idempotency-Key in Redis for ~25 h, outside both backpressure bounds: at ~700 B
a write, a steady 30 writes/s filled 2 GiB in a day, and then every write was
refused while the queue was empty. Now a receipt is in Redis only while its
write is queued (counted against WRITE_QUEUE_HIGH_WATER_BYTES), then in MySQL;
an Idempotency-Key stays in Redis IDEMPOTENCY_CACHE_S (within a byte budget),
and in MySQL, as its write's claim, for RECEIPT_TTL.
"""
import json
import threading
import time
import uuid

import requests

from deploy.processes import wait_for
from tests.e2e.helpers import API_KEY, FAST, get, mysql_items, scalar, wait_drained, wait_receipt
from webapp.storage.queue import IDEMPOTENCY_KEY_BYTES, RECEIPT_BYTES, new_write_id

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def post(web, path, body, key=None, session=requests):
    headers = {**HEADERS, **({"Idempotency-Key": key} if key else {})}
    return session.post(web.url + path, data=json.dumps(body), headers=headers, timeout=30)


def receipt(web, write_id):
    return get(f"{web.url}/api/v1/writes/{write_id}")


def test_a_persisted_write_leaves_only_its_idempotency_key_and_a_later_retry_makes_no_second_copy(
        fresh, db, rds, start_web, start_worker):
    web = start_web(IDEMPOTENCY_CACHE_S=8)
    start_worker(**FAST)
    body = {"events": [{"name": "signup", "data": {"n": 1}}]}  # no event_id: only the key can tell a retry
    first = post(web, "/api/v1/events", body, key="order-7").json()
    assert rds.exists(f"spillway:write:{first['write_id']}")  # queued: the receipt is in Redis
    done = wait_receipt(web, first["write_id"])
    assert done["status"] == "persisted" and done["persisted"] == 1
    assert not rds.exists(f"spillway:write:{first['write_id']}")  # persisted: only MySQL has it
    assert post(web, "/api/v1/events", body, key="order-7").json() == first  # Redis still knows the key
    wait_for(lambda: not list(rds.scan_iter("spillway:idem:*")), timeout=30, message="the key to leave Redis")
    again = post(web, "/api/v1/events", body, key="order-7")  # a retry after Redis let the key go
    assert again.status_code == 202 and again.json()["write_id"] != first["write_id"]
    retried = wait_receipt(web, again.json()["write_id"])
    assert retried["status"] == "persisted" and retried["duplicate_of"] == first["write_id"]
    assert scalar(db, "SELECT COUNT(*) FROM events") == 1  # one copy, not two
    wait_for(lambda: not list(rds.scan_iter("spillway:idem:*")), timeout=30, message="the retry's key to go")
    other = post(web, "/api/v1/events", {"events": [{"name": "signup", "data": {"n": 2}}]}, key="order-7")
    wait_receipt(web, other.json()["write_id"])  # another body under a forgotten key is a write of its own
    assert scalar(db, "SELECT COUNT(*) FROM events") == 2


def test_a_late_retry_of_an_item_write_never_rolls_back_a_newer_write(fresh, db, rds, start_web, start_worker):
    web = start_web(IDEMPOTENCY_CACHE_S=1)
    start_worker(**FAST)
    first = post(web, "/api/v1/items", {"items": [{"key": "k", "data": {"v": "old"}}]}, key="a").json()
    wait_receipt(web, first["write_id"])
    newer = post(web, "/api/v1/items", {"items": [{"key": "k", "data": {"v": "new"}}]}).json()
    wait_receipt(web, newer["write_id"])
    wait_for(lambda: not list(rds.scan_iter("spillway:idem:*")), timeout=20, message="the key to leave Redis")
    late = post(web, "/api/v1/items", {"items": [{"key": "k", "data": {"v": "old"}}]}, key="a").json()
    assert wait_receipt(web, late["write_id"])["duplicate_of"] == first["write_id"]
    assert mysql_items(db) == {"k": {"v": "new"}}
    assert get(f"{web.url}/api/v1/items/k").json()["data"] == {"v": "new"}  # its pending entry was dropped


def test_a_receipt_past_receipt_ttl_answers_receipt_expired_and_an_unknown_one_not_found(web):
    old = new_write_id(int(time.time() * 1000) - 26 * 3600 * 1000)
    r = receipt(web, old)
    assert r.status_code == 404 and r.json()["error"]["code"] == "receipt_expired"
    r = receipt(web, new_write_id())
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_retention_deletes_receipts_past_their_time(fresh, db, start_web, start_worker):
    settings = dict(RECEIPT_TTL=3, SHORT_WINDOWS_OK="true")
    web = start_web(**settings)
    start_worker(**settings, **FAST)
    write_id = post(web, "/api/v1/items", {"items": [{"key": "k", "data": {}}]}).json()["write_id"]
    wait_receipt(web, write_id)
    assert scalar(db, "SELECT COUNT(*) FROM writes") == 1
    wait_for(lambda: receipt(web, write_id).status_code == 404, timeout=90, message="retention to delete it")
    assert receipt(web, write_id).json()["error"]["code"] == "receipt_expired"


def test_the_bytes_a_write_leaves_are_within_the_stated_budget(svc, rds):
    from webapp.storage.records import Item

    for n in range(2000):
        svc.queue.append([Item(f"k{n}", "{}")], "0123456789abcdef", idempotency_key=f"key-{n}", request_hash="0" * 32)
    receipt_key = next(rds.scan_iter("spillway:write:*"))
    idem_key = next(rds.scan_iter("spillway:idem:*"))
    assert rds.memory_usage(receipt_key, samples=0) <= RECEIPT_BYTES
    per_member = rds.memory_usage("spillway:expiry", samples=0) / rds.zcard("spillway:expiry")
    assert rds.memory_usage(idem_key, samples=0) + per_member <= IDEMPOTENCY_KEY_BYTES


def test_a_steady_400_writes_per_second_with_fresh_keys_stays_within_a_small_redis(fresh, rds, start_web,
                                                                                   start_worker):
    # The case, shortened: a 64 MiB Redis, a 16 MiB queue bound, one-item writes with fresh
    # Idempotency-Keys at 400/s. The keys' budget is set small, so that the run also goes past it.
    rds.config_set("maxmemory", 64 * 1024**2)
    try:
        limits = dict(WRITE_QUEUE_HIGH_WATER_BYTES=16 * 1024**2, IDEMPOTENCY_CACHE_BYTES=2 * 1024**2)
        web = start_web(**limits)
        start_worker(**limits, **FAST)
        statuses, peak, stop = [], [0], threading.Event()

        def writer(n):
            session = requests.Session()
            sent, started = 0, time.monotonic()
            while not stop.is_set():
                body = {"items": [{"key": f"w{n}-{sent}", "data": {"n": sent}}]}
                statuses.append(post(web, "/api/v1/items", body, key=str(uuid.uuid4()), session=session).status_code)
                sent += 1
                time.sleep(max(0.0, started + sent / 50 - time.monotonic()))  # 50/s a thread, 400/s in all

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            peak[0] = max(peak[0], int(rds.info("memory")["used_memory"]))
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(statuses) > 45 * 300 and set(statuses) == {202}, {s: statuses.count(s) for s in set(statuses)}
        assert peak[0] < 0.9 * 64 * 1024**2, peak[0]
        wait_drained(rds)
        keys_held = rds.zcard("spillway:expiry")
        assert keys_held <= 2 * 1024**2 // IDEMPOTENCY_KEY_BYTES + 400  # the budget, and a keeper tick's writes
        assert not list(rds.scan_iter("spillway:write:*"))  # every receipt in MySQL now
    finally:
        rds.config_set("maxmemory", 2 * 1024**3)


def test_a_persisted_receipt_answers_from_mysql_while_redis_is_down(fresh, start_web, start_worker,
                                                                    servers_restored):
    web = start_web()
    start_worker(**FAST)
    write_id = post(web, "/api/v1/items", {"items": [{"key": "k", "data": {}}]}).json()["write_id"]
    assert wait_receipt(web, write_id)["status"] == "persisted"
    servers_restored.redis.stop()
    r = receipt(web, write_id)
    assert r.status_code == 200 and r.json()["status"] == "persisted"
    assert receipt(web, new_write_id()).status_code == 503  # one Redis may hold: not a 404 while it is away
