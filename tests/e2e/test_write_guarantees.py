"""Guarantees 1-4, 7, 9, 10 and 11 of the write path, with real gunicorn, Celery workers, MariaDB and Redis."""
import ast
import json
import signal
import threading
import time

import pytest
import requests

from deploy.processes import wait_for
from tests.e2e.helpers import (
    DEPTH,
    FAST,
    HEADERS,
    STREAM,
    assert_error,
    flower_get,
    get,
    item_url,
    mysql_items,
    parallel,
    post,
    post_items,
    put_row,
    scalar,
    wait_drained,
    wait_receipt,
)
from tests.e2e.test_read_api import EXACT_KEYS

# --- guarantee 1: a 202 means the write is in Redis -------------------------------------------

def test_redis_down_writes_are_503_queue_unavailable(fresh, start_web, servers_restored):
    web = start_web()
    servers_restored.redis.stop()
    r = post_items(web, [("k", {})])
    assert_error(r, 503, "queue_unavailable")


def test_redis_hung_write_is_503_within_redis_timeout_and_never_queued_later(fresh, start_web, rds, servers_restored):
    web = start_web(REDIS_TIMEOUT=1)
    assert post_items(web, [("warm", {})]).status_code == 202  # the pool holds a live connection
    servers_restored.redis.signal(signal.SIGSTOP)
    started = time.monotonic()
    r = post_items(web, [("late", {"n": 1})])
    took = time.monotonic() - started
    assert_error(r, 503, "queue_unavailable")
    assert took < 1 + 1.5, took
    servers_restored.redis.signal(signal.SIGCONT)
    time.sleep(0.5)  # Redis now reads the command the client gave up on ...
    assert rds.xlen(STREAM) == 1 and int(rds.get(DEPTH)) == 1  # ... and refuses it: only "warm" is queued
    assert get(item_url(web.url, "late")).status_code != 200


# --- guarantee 2: nothing lost, nothing doubled ---------------------------------------------------

def test_workers_sigkilled_mid_batch_twice_lose_and_double_nothing(web, db, rds, start_worker):
    """300 concurrent POSTs of 24 new items (7,200 records); the workers are SIGKILLed twice, 3 s apart."""
    worker = start_worker(**FAST)
    wait_for(lambda: rds.zcard("spillway:drain:alive"), message="a drain to start")
    with db.cursor() as cur:
        cur.execute("LOCK TABLES items WRITE")  # every drain batch now hangs mid-transaction
        responses = parallel(
            lambda n: post_items(web, [(f"m{n:03d}-{i:02d}", {"n": n, "i": i, "t": "\u00e9\U0001f600"}) for i in range(24)]),
            range(300), workers=100)
        assert [r.status_code for r in responses] == [202] * 300
        wait_for(lambda: rds.xpending(STREAM, "drain")["pending"] > 0, message="a batch in a worker's hands")
        worker.kill()
        worker = start_worker(**FAST)  # supervisord restarts it
        time.sleep(3)
        worker.kill()
        cur.execute("UNLOCK TABLES")
    start_worker(**FAST)
    wait_drained(rds)
    stored = mysql_items(db)
    assert len(stored) == 7200
    assert all(stored[f"m{n:03d}-{i:02d}"] == {"n": n, "i": i, "t": "\u00e9\U0001f600"} for n in range(300) for i in range(24))
    receipts = parallel(lambda r: get(web.url + r.json()["status_url"]).json(), responses, workers=20)
    assert {(x["status"], x["persisted"], x["dead"]) for x in receipts} == {("persisted", 24, 0)}


def test_entries_held_by_a_dead_consumer_are_reclaimed(web, db, rds, start_worker):
    for n in range(5):
        assert post_items(web, [(f"g{n}", {"n": n})]).status_code == 202
    # (the first accepted write made the drain's consumer group)
    rds.xreadgroup("drain", "ghost:1", {STREAM: ">"}, count=100)  # delivered to a consumer that then died
    start_worker(WRITE_CLAIM_IDLE=2, DB_WRITE_TIMEOUT=1)
    wait_drained(rds, timeout=30)
    assert set(mysql_items(db)) == {f"g{n}" for n in range(5)}


def test_mysql_down_writes_keep_being_accepted_and_land_exactly_once(web, db, rds, start_worker, servers_restored):
    start_worker(**FAST)
    stop, statuses, lock = threading.Event(), [], threading.Lock()
    counter = iter(range(10**9))

    def writer():
        while not stop.is_set():
            with lock:
                first = next(counter) * 10
            body = {"events": [{"name": "tick", "data": {"n": first + i}} for i in range(10)]}
            statuses.append(post(web, "/api/v1/events", body).status_code)
            time.sleep(0.02)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    servers_restored.mariadb.stop()
    time.sleep(10)  # writes keep arriving while MySQL is down (measured by hand for 60 s: docs/guarantees.md)
    servers_restored.mariadb.start()
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {202}
    wait_drained(rds, timeout=120)
    db.connect()
    total = len(statuses) * 10
    assert scalar(db, "SELECT COUNT(*) FROM events") == total  # none lost, none doubled
    assert scalar(db, "SELECT COUNT(DISTINCT data) FROM events") == total


def test_redis_killed_and_restarted_keeps_every_queued_write(web, db, rds, start_worker, servers_restored):
    for n in range(30):
        assert post_items(web, [(f"r{n}", {"n": n})]).status_code == 202
        assert post(web, "/api/v1/events", {"events": [{"name": "e", "data": {"n": n}}]}).status_code == 202
    servers_restored.redis.kill()  # SIGKILL: no shutdown save; the AOF has every acknowledged write
    servers_restored.redis.start()
    assert int(rds.get(DEPTH)) == 60 and rds.xlen(STREAM) == 60
    # The web server's pooled connections died with Redis; its next calls reconnect, no 503.
    assert get(item_url(web.url, "r0")).json()["data"] == {"n": 0}
    assert post_items(web, [("r-after", {"n": -1})]).status_code == 202
    start_worker(**FAST)
    wait_drained(rds)
    assert len(mysql_items(db)) == 31
    assert scalar(db, "SELECT COUNT(*) FROM events") == 30


# --- guarantee 3: last write wins by acceptance order ---------------------------------------------

def test_batches_applied_late_twice_and_out_of_order_never_roll_back(fresh, db, settings):
    from webapp.storage.records import Event, Item, Queued
    from webapp.storage.services import Services
    from webapp.storage.writer import apply

    svc = Services(settings, role="worker")
    old = Queued(Item("k", '{"v":"old"}'), 100, "w_a", 1_800_000_000_000_000)
    new = Queued(Item("k", '{"v":"new"}'), 200, "w_b", 1_800_000_000_000_001)
    tombstone = Queued(Item("gone", None), 300, "w_c", 1_800_000_000_000_002)
    revive = Queued(Item("gone", '{"v":"older"}'), 250, "w_d", 1_800_000_000_000_003)
    event = Queued(Event("e", "info", None, None, "{}"), 400, "w_e", 1_800_000_000_000_004)
    # Each sequence ends with a stale batch: a blind overwrite would leave the old value.
    for batch in ([new], [old], [new, old], [old, new], [old], [tombstone], [revive], [tombstone, revive], [revive],
                  [event], [event]):
        apply(svc.db, batch, {})
    assert scalar(db, "SELECT data FROM items WHERE k = 'k'") == '{"v":"new"}'
    assert scalar(db, "SELECT version FROM items WHERE k = 'k'") == 200
    assert scalar(db, "SELECT deleted FROM items WHERE k = 'gone'") == 1  # the older upsert did not undo it
    assert scalar(db, "SELECT COUNT(*) FROM events") == 1
    svc.close()


def test_later_writes_win_in_acceptance_order(web, db, rds, start_worker):
    start_worker(**FAST)
    r = post_items(web, [("x", {"v": 1}), ("x", {"v": 2}), ("y", {"v": 1})])  # later in a batch wins
    for v in range(2, 30):
        post_items(web, [("y", {"v": v})])
    requests.delete(item_url(web.url, "x"), headers=HEADERS, timeout=10)
    wait_drained(rds)
    assert wait_receipt(web, r.json()["write_id"])["status"] == "persisted"
    assert mysql_items(db) == {"y": {"v": 29}}
    assert get(item_url(web.url, "x")).status_code == 404


def test_versions_keep_rising_when_redis_loses_its_counter(web, rds):
    post_items(web, [("k", {"n": 1})])
    first = get(item_url(web.url, "k")).json()["version"]
    rds.delete("spillway:version")  # as if a restart lost the last second of the AOF
    post_items(web, [("k", {"n": 2})])
    assert get(item_url(web.url, "k")).json()["version"] > first


# --- guarantee 4: read your writes ----------------------------------------------------------------

def test_get_right_after_post_returns_new_data_before_any_drain(web, db, rds, start_worker):
    put_row(db, "known", {"v": "old"}, version=1)
    assert get(item_url(web.url, "known")).json()["data"] == {"v": "old"}  # now cached, with a TTL
    assert get(item_url(web.url, "fresh")).status_code == 404  # a cached miss
    assert post_items(web, [("known", {"v": "new"}), ("fresh", {"v": 1})]).status_code == 202
    assert get(item_url(web.url, "known")).json()["data"] == {"v": "new"}
    assert get(item_url(web.url, "fresh")).json()["data"] == {"v": 1}
    # Pending entries do not expire, and lists show persisted items only.
    assert rds.pttl("spillway:item:known") == -1 and rds.pttl("spillway:item:fresh") == -1
    listed = {i["key"]: i["data"] for i in get(web.url + "/api/v1/items").json()["items"]}
    assert listed == {"known": {"v": "old"}}
    requests.delete(item_url(web.url, "known"), headers=HEADERS, timeout=10)
    assert get(item_url(web.url, "known")).status_code == 404

    start_worker(**FAST)
    wait_drained(rds)
    listed = {i["key"]: i["data"] for i in get(web.url + "/api/v1/items").json()["items"]}
    assert listed == {"fresh": {"v": 1}}
    assert rds.pttl("spillway:item:fresh") > 0  # persisted: an ordinary cached entry now


def test_exact_text_round_trips_through_the_queue_and_mysql(web, db, rds, start_worker):
    data = {key: {"text": key + " \u2603 \"q\" \\ \U0001f680 ' OR 1=1; --", "n": 12345678901234567890123} for key in EXACT_KEYS}
    assert post_items(web, list(data.items())).status_code == 202
    for key, value in data.items():  # from the pending cache
        assert get(item_url(web.url, key)).json() == {**get(item_url(web.url, key)).json(), "key": key, "data": value}
    start_worker(**FAST)
    wait_drained(rds)
    rds.flushall()  # from MySQL
    for key, value in data.items():
        body = get(item_url(web.url, key)).json()
        assert body["key"] == key and body["data"] == value
    assert mysql_items(db) == data


# --- guarantee 7: backpressure --------------------------------------------------------------------

def test_past_the_high_water_mark_writes_get_503_backpressure_and_queue_nothing(fresh, start_web, rds):
    web = start_web(WRITE_QUEUE_HIGH_WATER=50)
    assert post_items(web, [(f"a{i}", {}) for i in range(24)]).status_code == 202
    assert post_items(web, [(f"b{i}", {}) for i in range(24)]).status_code == 202
    r = post_items(web, [(f"c{i}", {}) for i in range(24)])
    assert_error(r, 503, "backpressure")
    assert int(rds.get(DEPTH)) == 48 and rds.xlen(STREAM) == 2
    assert get(item_url(web.url, "c0")).status_code == 404
    assert r.headers["Retry-After"] == "5"  # no drain has measured its pace yet
    rds.set("spillway:drain:rate", 4, ex=10)  # the drains persist 4 records a second
    r = post_items(web, [(f"c{i}", {}) for i in range(24)])
    # (48 queued + 24 asked - 45, 90% of the mark) / 4 per second: 7 s until there is room again.
    assert_error(r, 503, "backpressure")
    assert r.headers["Retry-After"] == "7"


def test_past_the_high_water_mark_in_bytes_writes_get_503_backpressure_and_queue_nothing(fresh, start_web, rds):
    web = start_web(WRITE_QUEUE_HIGH_WATER_BYTES=20_000)  # an item counts twice: queue and pending entry
    big = {"pad": "x" * 3000}
    assert post_items(web, [(f"a{i}", big) for i in range(2)]).status_code == 202  # about 12 KB counted
    r = post_items(web, [(f"b{i}", big) for i in range(2)])
    assert_error(r, 503, "backpressure")
    assert rds.xlen(STREAM) == 1 and 12_000 < int(rds.get("spillway:queue:bytes")) < 20_000
    assert get(item_url(web.url, "b0")).status_code == 404


# --- guarantee 9: poison records ------------------------------------------------------------------

@pytest.fixture()
def poison_trigger(mysql_trigger):
    """A trigger that makes MySQL reject the item 'poison' (a real rejection, no mock)."""
    mysql_trigger("reject_poison", "BEFORE INSERT ON items FOR EACH ROW BEGIN IF NEW.k = 'poison' THEN "
                                   "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison rejected'; END IF; END")


def test_a_record_mysql_rejects_is_dead_lettered_and_the_rest_is_written(web, db, rds, start_worker, poison_trigger):
    first = post_items(web, [(f"a{i}", {"i": i}) for i in range(10)] + [("poison", {"x": 1})]
                       + [(f"b{i}", {"i": i}) for i in range(10)]).json()
    second = post_items(web, [("c", {"ok": True})]).json()
    start_worker(**FAST)
    assert wait_receipt(web, first["write_id"]) | {"accepted_at": None, "persisted_at": None} == {
        "write_id": first["write_id"], "kind": "items", "status": "dead", "accepted": 21, "persisted": 20,
        "dead": 1, "accepted_at": None, "persisted_at": None}
    assert wait_receipt(web, second["write_id"])["status"] == "persisted"
    stored = mysql_items(db)
    assert "poison" not in stored and len(stored) == 21
    with db.cursor() as cur:
        cur.execute("SELECT write_id, kind, record, reason FROM dead_letters")
        (write_id, kind, record, reason), = cur.fetchall()
    record = json.loads(record)
    assert (write_id, kind, record["key"], json.loads(record["data"])) == (first["write_id"], "items", "poison", {"x": 1})
    assert "poison rejected" in reason
    assert get(item_url(web.url, "poison")).status_code == 404  # the unpersisted value is not served


# --- guarantee 10: SIGTERM to a Celery worker ----------------------------------------------------

def test_sigterm_commits_the_batch_in_hand_then_exits_without_waiting_out_the_task(web, db, rds, start_worker):
    responses = parallel(lambda n: post_items(web, [(f"s{n:03d}-{i:02d}", {"n": n}) for i in range(100)]),
                         range(200), workers=20)
    assert all(r.status_code == 202 for r in responses)
    worker = start_worker(DRAIN_TASK_SECONDS=120)  # a task would run two minutes if not told to stop
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM items") > 0, message="draining to start")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.proc.wait(60)
    assert time.monotonic() - started < 20
    # Every record is either committed and acknowledged, or still queued: none in between.
    assert scalar(db, "SELECT COUNT(*) FROM items") + int(rds.get(DEPTH)) == 20000
    start_worker(**FAST)
    wait_drained(rds)
    assert scalar(db, "SELECT COUNT(*) FROM items") == 20000


# --- Flower -----------------------------------------------------------------------------------------

def test_flower_lists_drain_tasks_with_the_rows_they_wrote(web, rds, start_worker, start_flower):
    flower = start_flower()
    wait_for(lambda: flower_get(flower.url + "/api/workers") is not None, message="Flower to answer")
    start_worker(DRAIN_TASK_SECONDS=1)
    post_items(web, [(f"f{i}", {}) for i in range(24)])

    def drained_rows():
        tasks = flower_get(flower.url + "/api/tasks", taskname="spillway.drain") or {}
        # Flower shows each task's result as its repr: {'slot': 0, 'rows': 24, ...}
        return sum(ast.literal_eval(t["result"]).get("rows", 0) for t in tasks.values()
                   if t.get("state") == "SUCCESS" and t.get("result"))

    wait_for(lambda: drained_rows() >= 24, timeout=30, message="Flower to show the drain's rows")
    assert requests.get(flower.url + "/api/tasks", timeout=10).status_code == 401


def test_an_unreadable_queue_entry_is_set_aside_and_never_blocks_the_queue(web, db, rds, start_worker):
    rds.xgroup_create(STREAM, "drain", id="0", mkstream=True)
    rds.xadd(STREAM, {"w": "w_" + "0" * 26, "k": "items", "n": "1", "v": "1", "t": "1", "r": '["old format"]'})
    rds.incrby(DEPTH, 1)
    assert post_items(web, [("after", {"ok": True})]).status_code == 202
    start_worker(**FAST)
    wait_drained(rds)
    assert mysql_items(db) == {"after": {"ok": True}}
    (_, aside), = rds.xrange("spillway:queue:unreadable")
    assert aside[b"r"] == b'["old format"]' and b"ValueError" in aside[b"reason"]
