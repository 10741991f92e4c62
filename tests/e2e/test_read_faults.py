"""Reads when MySQL is down, hung or saturated (guarantees 5 and 6), against live processes.

Elapsed-time checks here are hang detectors with generous slack, not speed
targets: each bounds a wait the guarantee promises to cut off.
"""
import signal
import threading
import time

import pytest

from tests.e2e.helpers import assert_error, get, item_url, parallel, put_row, wait_for_status


@pytest.fixture()
def mysql_restored(servers_restored):
    """MariaDB, running again after the test whatever the test did to it."""
    return servers_restored.mariadb


def timed_get(url):
    """(response, seconds taken)."""
    started = time.monotonic()
    response = get(url)
    return response, time.monotonic() - started


def test_mysql_stopped_cached_keys_served_misses_503_fast(fresh, start_web, db, mysql_restored):
    web = start_web(DB_POOL_TIMEOUT=2, DB_QUERY_TIMEOUT=2)
    put_row(db, "cached", {"n": 1})
    assert get(item_url(web.url, "cached")).status_code == 200
    mysql_restored.stop()

    r, took = timed_get(item_url(web.url, "cached"))
    assert r.status_code == 200 and r.json()["data"] == {"n": 1}
    for key in ("uncached-1", "uncached-2"):
        r, took = timed_get(item_url(web.url, key))
        assert_error(r, 503, "database_unavailable")
        assert took <= 2 + 1, took  # DB_POOL_TIMEOUT + 1 s
    assert_error(get(f"{web.url}/api/v1/items"), 503, "database_unavailable")

    mysql_restored.start()
    db.connect()  # this test's own connection died with the server
    put_row(db, "after", {"n": 2})
    # Reads recover once the breaker's cooldown (DB_RETRY_INTERVAL, 1 s) has passed.
    r = wait_for_status(item_url(web.url, "after"), 200, timeout=5)
    assert r.json()["data"] == {"n": 2}


def test_mysql_hung_misses_503_within_pool_plus_query_timeout(fresh, start_web, db, mysql_restored):
    web = start_web(DB_POOL_TIMEOUT=1, DB_QUERY_TIMEOUT=1)
    put_row(db, "cached", {"n": 1})
    get(item_url(web.url, "cached"))
    get(item_url(web.url, "warm-the-pool"))
    mysql_restored.signal(signal.SIGSTOP)  # accepts TCP, answers nothing

    assert get(item_url(web.url, "cached")).status_code == 200
    results = parallel(lambda i: timed_get(item_url(web.url, f"miss-{i}")), range(6), workers=6)
    for r, took in results:
        assert r.status_code == 503 and r.json()["error"]["code"] in ("database_unavailable", "pool_timeout")
        assert r.headers["Retry-After"]
        assert took <= 1 + 1 + 1.5, took  # pool + query timeout, plus slack
    mysql_restored.signal(signal.SIGCONT)
    put_row(db, "after", {"n": 2})
    wait_for_status(item_url(web.url, "after"), 200, timeout=5)


def test_pool_of_one_held_makes_the_next_request_503_pool_timeout(fresh, start_web, db):
    web = start_web(WEB_WORKERS=1, DB_POOL_SIZE=1, DB_POOL_TIMEOUT=1, DB_QUERY_TIMEOUT=10)
    put_row(db, "a", {"n": 1})
    holder = {}
    with db.cursor() as cur:
        cur.execute("LOCK TABLES items WRITE")
        t = threading.Thread(target=lambda: holder.setdefault("r", get(item_url(web.url, "a"))))
        t.start()
        time.sleep(0.3)  # request A now holds the only connection, waiting on the lock
        r, took = timed_get(item_url(web.url, "b"))
        assert_error(r, 503, "pool_timeout")
        assert 0.9 <= took <= 1 + 1.5, took
        cur.execute("UNLOCK TABLES")
    t.join()
    assert holder["r"].status_code == 200  # A was never cut off, only B was refused


def test_start_refused_when_the_connection_budget_exceeds_max_connections(start_web):
    web = start_web(wait=False, DB_POOL_SIZE=150, WEB_WORKERS=2)
    web.proc.wait(30)
    assert web.proc.returncode != 0
    assert "max_connections is 200" in web.log() and "DB_POOL_SIZE" in web.log()


def test_500_concurrent_misses_stay_within_the_pool_bound(fresh, start_web, db, stack):
    web = start_web(WEB_WORKERS=2, DB_POOL_SIZE=3, DB_POOL_TIMEOUT=5)
    with db.cursor() as cur:
        cur.execute("INSERT INTO items (k, data, version, deleted, updated_at) SELECT CONCAT('c', seq), '{}', 1, 0, NOW(6) FROM seq_1_to_500")
    # Max_used_connections := connections open now (this test's, other idle servers')
    baseline = int(stack.mariadb.sql("FLUSH STATUS; SHOW GLOBAL STATUS LIKE 'Threads_connected'").stdout.split()[-1])
    results = parallel(lambda i: get(item_url(web.url, f"c{i}")).status_code, range(1, 501), workers=250)
    assert set(results) <= {200, 503} and results.count(200) > 0
    with db.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
        used = int(cur.fetchone()[1]) - baseline
    # Without the bound, 250 concurrent misses would open ~250 connections.
    assert used <= 2 * 3, used
