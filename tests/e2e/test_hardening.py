"""Edges found by reading the code as an attacker or an unlucky operator would; each staged against the real
servers, each failing without its fix."""
import json
import signal
import socket
import threading
import time

import pytest
import requests

from deploy.processes import wait_for
from deploy.run import stack_processes
from tests.e2e.helpers import API_KEY, HEADERS, assert_error, get, item_url, metric, post, put_row
from tests.e2e.test_make_run import RUN_VAR, make_run  # noqa: F401 - the `make run` fixture
from tests.e2e.test_scale_out import replica  # noqa: F401 - a second MariaDB standing in for a replica

# --- 1. Other transfer codings ----------------------------------------------------------------


def stalled_upload(port, coding):
    """A POST that announces a body and sends half of it, then stalls; the socket (left open)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /api/v1/dead-letters/redrive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: {coding}\r\n\r\n10\r\n{{\"dry_run\": tr")
    s.sendall(head.encode())
    return s


@pytest.mark.parametrize("coding", ["gzip, chunked", "identity, gzip, chunked", "deflate"])
def test_another_transfer_coding_is_refused_at_once_and_holds_no_slot(fresh, start_web, db, coding):
    web = start_web(WEB_MAX_ACTIVE=4, WEB_WORKERS=1)
    put_row(db, "cached", {"v": 1})
    assert get(item_url(web.url, "cached")).status_code == 200
    sockets = [stalled_upload(web.port, coding) for _ in range(40)]
    try:
        replies = [s.recv(4096) for s in sockets[:3]]  # answered at once, not after BODY_READ_TIMEOUT
        assert all(r.startswith(b"HTTP/1.1 400") and b'"bad_request"' in r for r in replies), replies[:1]
        # before: the stalled uploads held every slot, and this waited until the client gave up
        assert get(item_url(web.url, "cached"), timeout=8).json()["data"] == {"v": 1}
    finally:
        for s in sockets:
            s.close()


def test_identity_then_chunked_is_read_like_chunked(web):
    body = json.dumps({"items": [{"key": "k", "data": {}}]}).encode()
    raw = (f"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n"
           f"Content-Type: application/json\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
           f"{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(raw)
        assert s.recv(4096).startswith(b"HTTP/1.1 202")


# --- 2. Inputs that answered 500 ------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b'{"items":[{"key":"k","data":{"n":' + b"7" * 5000 + b'}}]}',  # past 64 bits: a regression check (msgspec refuses it)
    b'{"items":[{"key":"k","data":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}]}",  # msgspec's RecursionError
])
def test_a_huge_integer_or_deep_nesting_is_400_logged_and_counted(web, raw):
    before = metric(get(web.url + "/metrics").text, "spillway_http_requests_total", route="/api/v1/items",
                    method="POST", status="400")
    assert_error(requests.post(web.url + "/api/v1/items", data=raw, headers=HEADERS, timeout=30), 400, "invalid_json")
    after = metric(get(web.url + "/metrics").text, "spillway_http_requests_total", route="/api/v1/items",
                   method="POST", status="400")
    assert after == before + 1


# --- 3. A 503 that was queued --------------------------------------------------------------------


def test_a_write_answered_503_during_a_redis_stall_is_never_queued_later(fresh, start_web, rds, servers_restored):
    web = start_web(REDIS_TIMEOUT=2, WEB_WORKERS=1)
    assert post(web, "/api/v1/items", {"items": [{"key": "warm", "data": {}}]}).status_code == 202
    time.sleep(10.5)  # the next write measures the clock offset against Redis again (every 10 s)
    # A stall during that measurement: its round trip took 1.5 s; the midpoint put the offset ~0.75 s late.
    redis = servers_restored.redis
    redis.signal(signal.SIGSTOP)
    first = threading.Thread(target=post, args=(web, "/api/v1/items", {"items": [{"key": "during", "data": {}}]}))
    first.start()
    time.sleep(1.5)
    redis.signal(signal.SIGCONT)
    first.join()
    # Now a write the client gives up on after REDIS_TIMEOUT, its script reaching Redis 0.5 s after that.
    redis.signal(signal.SIGSTOP)
    answers = []
    late = threading.Thread(target=lambda: answers.append(post(web, "/api/v1/items",
                                                               {"items": [{"key": "late", "data": {}}]})))
    late.start()
    time.sleep(2.5)
    redis.signal(signal.SIGCONT)
    late.join()
    assert_error(answers[0], 503, "queue_unavailable")
    time.sleep(0.5)
    assert rds.get("spillway:item:late") is None  # "nothing was accepted" means nothing was accepted


# --- 4. A reload with a broken .env ------------------------------------------------------------


def test_a_reload_with_a_broken_env_is_refused_and_the_old_workers_serve_on(fresh, start_web, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"API_KEYS={API_KEY}\n")
    web = start_web(SPILLWAY_ENV_FILE=env_file, API_KEYS=None)
    env_file.write_text(f"API_KEYS={API_KEY}:write+nonsense\n")  # a typo in the key rotation
    web.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in web.log(), timeout=15, message="the refusal's log line")
    time.sleep(2)
    assert web.alive()  # before: the master exited, and supervisord marked it FATAL
    assert post(web, "/api/v1/items", {"items": [{"key": "k", "data": {}}]}).status_code == 202
    env_file.write_text(f"API_KEYS={API_KEY},rotated-key\n")  # fixed: the next reload goes through
    web.send_signal(signal.SIGHUP)
    rotated = {"Authorization": "Bearer rotated-key", "Content-Type": "application/json"}
    wait_for(lambda: requests.post(web.url + "/api/v1/items", headers=rotated, timeout=10,
                                   data=json.dumps({"items": [{"key": "r", "data": {}}]})).status_code == 202,
             timeout=30, message="the new key to work")
    assert HEADERS  # the old key is still in the file


# --- 5. The disk under Redis's AOF fills up --------------------------------------------------------


@pytest.fixture()
def small_disk(tmp_path):
    """A tmpfs of 8 MiB (root, as CI is); grown() gives it room again."""
    import subprocess

    where = tmp_path / "aof-disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], check=True)

    def grown():
        subprocess.run(["mount", "-o", "remount,size=256m", str(where)], check=True)

    yield where, grown
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_under_the_aof_stops_accepts_with_503_and_every_202_lands_once_space_returns(
        fresh, db, start_web, start_worker, scratch_redis, small_disk):
    import redis as redis_lib

    from tests.e2e.helpers import FAST, mysql_items

    where, grown = small_disk
    url, _ = scratch_redis("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                           "--dir", str(where), "--auto-aof-rewrite-percentage", "0")
    web = start_web(REDIS_URL=url)
    start_worker(REDIS_URL=url, **FAST)
    accepted, refused = {}, 0
    for n in range(2000):
        items = [(f"d{n}-{i}", {"pad": "p" * 4000}) for i in range(8)]
        r = requests.post(web.url + "/api/v1/items", headers=HEADERS, timeout=30,
                          data=json.dumps({"items": [{"key": k, "data": d} for k, d in items]}))
        if r.status_code == 202:
            accepted[r.json()["write_id"]] = items
            continue
        assert_error(r, 503, "queue_unavailable")  # MISCONF: the AOF could not be written
        refused += 1
        if refused >= 5:
            break
    assert refused >= 5, "the disk never filled"
    ready = get(web.url + "/readyz", headers=HEADERS).json()
    assert ready["checks"]["redis"] == "aof_write_failed" and ready["status"] == "degraded", ready
    key, data = next(iter(accepted.values()))[0]
    assert get(web.url + f"/api/v1/items/{key}", headers=HEADERS).json()["data"] == data  # reads still serve
    grown()  # space again: Redis writes its AOF, takes writes, and the drain acknowledges what it wrote
    client = redis_lib.Redis.from_url(url)
    wait_for(lambda: int(client.get("spillway:queue:depth") or 0) == 0, timeout=120, interval=0.5,
             message="the queue to drain once the disk has room")
    stored = mysql_items(db)
    assert all(stored[k] == d for items in accepted.values() for k, d in items)
    assert get(web.url + "/readyz", headers=HEADERS).json()["checks"]["redis"] == "ok"
    client.close()


# --- 8. Two redrives at once ----------------------------------------------------------------------


def test_two_redrives_at_once_queue_each_dead_letter_once(fresh, db, rds, settings, servers_restored):
    from webapp.storage.services import Services
    from webapp.storage.sql.deadletters import Filter

    with db.cursor() as cur:
        cur.execute("INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at, accepted_at) "
                    "VALUES (1700000000000000, 'w_x', 'items', '{\"key\": \"k\", \"data\": \"{}\"}', 'r', NOW(6), "
                    "NOW(6))")
    first, second = Services(settings, role="worker"), Services(settings, role="worker")
    redriven = []
    try:
        servers_restored.redis.signal(signal.SIGSTOP)  # the first redrive has read its batch, and waits on Redis
        a = threading.Thread(target=lambda: redriven.append(first.dead_letters.redrive(Filter())))
        a.start()
        time.sleep(0.5)
        b = threading.Thread(target=lambda: redriven.append(second.dead_letters.redrive(Filter())))
        b.start()
        time.sleep(0.5)  # the second reads the same dead letter meanwhile (before: it queued it again)
        servers_restored.redis.signal(signal.SIGCONT)
        a.join(30)
        b.join(30)
    finally:
        first.close()
        second.close()
    assert sorted(redriven) == [0, 1]
    assert rds.xlen("spillway:queue") == 1


# --- 6. Reads and the breaker ---------------------------------------------------------------------


@pytest.fixture()
def items_locked(db, settings):
    """A second connection holding LOCK TABLES items WRITE: every read of items waits (a slow list)."""
    import pymysql

    from webapp.storage.mysql import connect_kwargs

    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 60))

    def lock():
        with con.cursor() as cur:
            cur.execute("LOCK TABLES items WRITE")

    def unlock():
        with con.cursor() as cur:
            cur.execute("UNLOCK TABLES")

    yield lock, unlock
    unlock()
    con.close()


def test_lists_that_time_out_never_fail_the_point_reads_of_a_healthy_mysql(fresh, start_web, db, items_locked):
    lock, unlock = items_locked
    web = start_web(WEB_WORKERS=1, DB_LIST_TIMEOUT=1, DB_RETRY_INTERVAL=60)
    lock()
    for _ in range(5):
        assert get(web.url + "/api/v1/items").status_code == 503  # each list times out
    unlock()
    # Before: five timed-out lists opened the read breaker, and this miss answered 503 for a minute.
    assert_error(get(item_url(web.url, "missing")), 404, "not_found")


def test_a_list_past_its_budget_stops_in_mysql_too(fresh, start_web, db, items_locked):
    lock, unlock = items_locked
    # The session's limit covers every read (5 s here); the list's own (2 s) is on its statement, and
    # MariaDB stops it there (at 80%, before the client gives up: error 1969, counted in its status).
    web = start_web(WEB_WORKERS=1, DB_LIST_TIMEOUT=2, DB_QUERY_TIMEOUT=5)
    stopped = int(_status(db, "Max_statement_time_exceeded"))
    lock()
    assert get(web.url + "/api/v1/items").status_code == 503
    assert int(_status(db, "Max_statement_time_exceeded")) > stopped  # before: the client gave up, not MySQL
    time.sleep(1)
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%FROM items%%' "
                    "AND USER = 'spillway' AND ID <> CONNECTION_ID()")  # not this query itself
        assert cur.fetchone()[0] == 0  # before: the SELECT could wait on in the server, a thread and a connection
    unlock()


def _status(db, name):
    with db.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        return cur.fetchone()[1]


def test_a_list_page_stops_at_list_max_bytes_and_goes_on_from_there(fresh, start_web, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO items (k, data, version, deleted, updated_at) "
                    "SELECT CONCAT('big', LPAD(seq, 3, '0')), CONCAT('{\"s\":\"', REPEAT('x', 60000), '\"}'), "
                    "seq, 0, NOW(6) FROM seq_1_to_120")
    web = start_web(LIST_MAX_BYTES=1024 * 1024)
    first = get(web.url + "/api/v1/items?limit=1000")
    assert len(first.content) <= 1024 * 1024 + 61000 and first.json()["next"]
    keys, page = [i["key"] for i in first.json()["items"]], first.json()
    while page["next"]:
        page = get(web.url + "/api/v1/items", params={"limit": 1000, "cursor": page["next"]}).json()
        keys += [i["key"] for i in page["items"]]
    assert keys == [f"big{n:03d}" for n in range(1, 121)]  # every item once, in order


def test_a_reader_that_stops_reading_is_cut_off(fresh, start_web, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO items (k, data, version, deleted, updated_at) "
                    "SELECT CONCAT('big', LPAD(seq, 3, '0')), CONCAT('{\"s\":\"', REPEAT('x', 60000), '\"}'), "
                    "seq, 0, NOW(6) FROM seq_1_to_200")
    # 12 MB: more than the kernel's socket buffers can take for a reader who takes nothing (tcp_wmem's
    # maximum is 4 MiB; with 3.6 MB the whole answer fit in them and the send never waited)
    web = start_web(WEB_SEND_TIMEOUT=2, LIST_MAX_BYTES=16 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)  # fixed: no autotuning; not tiny: read fast later
        s.sendall(b"GET /api/v1/items?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(5)  # reads nothing: the server's send waits, then gives up
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert len(body) < length  # the connection was closed mid-response


# --- 7. A MySQL read replica and read-your-writes ---------------------------------------------------


@pytest.mark.parametrize("read", ["get", "multi-get"])
def test_a_miss_never_serves_a_lagging_replicas_row_older_than_what_was_persisted(
        fresh, start_web, start_worker, db, rds, replica, read):  # noqa: F811
    from tests.e2e.helpers import FAST, wait_drained

    _, url, replica_db = replica
    put_row(replica_db, "k", {"v": "old"}, version=1)  # the replica has not caught up with either write
    put_row(replica_db, "gone", {"v": "old"}, version=1)
    web = start_web(MYSQL_REPLICA_URL=url)
    start_worker(MYSQL_REPLICA_URL=url, **FAST)
    assert post(web, "/api/v1/items", {"items": [{"key": "k", "data": {"v": "new"}}]}).status_code == 202
    assert requests.delete(item_url(web.url, "gone"), headers=HEADERS, timeout=10).status_code == 202
    wait_drained(rds)
    rds.delete("spillway:item:k", "spillway:item:gone")  # the cache entries expired, or were evicted
    if read == "get":
        assert get(item_url(web.url, "k")).json()["data"] == {"v": "new"}  # before: the replica's {"v": "old"}
        assert_error(get(item_url(web.url, "gone")), 404, "not_found")  # before: the deleted item came back
    else:
        got = post(web, "/api/v1/items:get", {"keys": ["k", "gone"]}).json()
        assert [(i["key"], i["data"]) for i in got["items"]] == [("k", {"v": "new"})], got  # before: both "old"
        assert got["missing"] == ["gone"], got


# --- 9. A slow MySQL multiplies work ---------------------------------------------------------------


def test_a_batch_stuck_behind_a_lock_is_neither_taken_over_nor_left_running_in_mysql(fresh, db, rds, settings,
                                                                                     start_web, start_worker):
    import pymysql

    from tests.e2e.helpers import FAST, mysql_items, wait_drained
    from webapp.storage.mysql import connect_kwargs

    put_row(db, "k", {"v": 0})
    web = start_web()
    start_worker(name="w1", **FAST)
    start_worker(name="w2", **FAST)
    locker = pymysql.connect(**{**connect_kwargs(settings.mysql_url, settings, 60), "autocommit": False})
    with locker.cursor() as cur:
        cur.execute("SELECT * FROM items WHERE k = 'k' FOR UPDATE")  # the drain's upsert waits on this row
    try:
        assert post(web, "/api/v1/items", {"items": [{"key": "k", "data": {"v": 1}}]}).status_code == 202
        # Several DB_WRITE_TIMEOUTs (2 s) and WRITE_CLAIM_IDLEs (3 s). A drain whose task ends hands the batch
        # on (another claims it once idle), but never while its own try still runs: at any moment one try at
        # most waits in MySQL. Before, a drain claimed a batch still being written, and every timed-out try
        # went on waiting in MySQL, each on a connection of its own.
        most, deadline = 0, time.monotonic() + 10
        with db.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'spillway' "
                            "AND INFO LIKE 'INSERT INTO items%%'")
                most = max(most, cur.fetchone()[0])
                time.sleep(0.2)
        assert most == 1, most  # 1: the drain did try (and wait on the lock)
        (pending,) = rds.xpending_range("spillway:queue", "drain", "-", "+", 10)
        assert pending["times_delivered"] <= 4, pending  # a handover at most per WRITE_CLAIM_IDLE, not per claim pass
    finally:
        locker.rollback()
        locker.close()
    wait_drained(rds)
    assert mysql_items(db)["k"] == {"v": 1}


# --- 11. A refusal nobody sees -------------------------------------------------------------------


def test_make_run_stops_at_once_and_prints_the_refusal_when_a_program_refuses_to_start(
        make_run, scratch_redis):  # noqa: F811
    url, _ = scratch_redis("--appendonly", "no", "--maxmemory-policy", "allkeys-lru")
    run = make_run(REDIS_URL=url)
    run.proc.wait(90)  # before: it waited for /readyz, then said only "did not answer 200 yet; see var/log/"
    out = run.output()
    assert run.proc.returncode == 3, out[-3000:]
    assert "refused to start" in out and "refusing Redis" in out and "allkeys-lru" in out, out[-3000:]
    assert not stack_processes(RUN_VAR.resolve())
