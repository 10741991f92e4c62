"""Constants and small helpers shared by the end-to-end tests."""
import json
import os
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

from deploy.processes import ROOT, wait_for
from webapp import clock

VAR = ROOT / "var" / "test"
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", 13307))
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", 16380))
API_KEY = "test-key-1"
OTHER_KEY = "test-key-2"
STREAM, DEPTH = "spillway:queue", "spillway:queue:depth"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
FLOWER_USER, FLOWER_PASSWORD = "admin", "test-flower-password"
FAST = {"WRITE_CLAIM_IDLE": 3, "DB_WRITE_TIMEOUT": 2, "DRAIN_TASK_SECONDS": 2}  # quick reclaim and handover


def post(web, path, body, **kwargs):
    """POST a JSON body with the test key."""
    return requests.post(web.url + path, data=json.dumps(body), headers=HEADERS, timeout=30, **kwargs)


def post_items(web, items):
    """POST /api/v1/items with (key, data) pairs."""
    return post(web, "/api/v1/items", {"items": [{"key": k, "data": d} for k, d in items]})


def wait_drained(rds, timeout=90):
    """Wait until every queued record has been acknowledged."""
    wait_for(lambda: int(rds.get(DEPTH) or 0) == 0 and rds.xlen(STREAM) == 0, timeout=timeout,
             interval=0.2, message="the queue to drain")


def wait_receipt(web, write_id, timeout=60):
    """Wait until a receipt is no longer queued; return it."""
    def settled():
        receipt = get(f"{web.url}/api/v1/writes/{write_id}").json()
        return receipt if receipt["status"] != "queued" else None
    return wait_for(settled, timeout=timeout, interval=0.2, message=f"write {write_id} to settle")


def mysql_items(db):
    """{key: data} of every live item row."""
    with db.cursor() as cur:
        cur.execute("SELECT k, data FROM items WHERE deleted = 0")
        return {k: json.loads(d) for k, d in cur.fetchall()}


def scalar(db, sql, args=()):
    """The first column of the first row of a query."""
    with db.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def item_url(base, key):
    """The URL of an item, its key percent-encoded ('/' as %2F)."""
    return f"{base}/api/v1/items/{quote(key, safe='')}"


def put_row(db, key, data, version=1, deleted=False):
    """Write an item row straight into MySQL (as a drain would have)."""
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE data=VALUES(data), version=VALUES(version), deleted=VALUES(deleted)",
            (key, None if deleted else json.dumps(data, ensure_ascii=False, separators=(",", ":")),
             version, int(deleted), clock.to_datetime(clock.now_us())),
        )


def status_value(db, name):
    """A MariaDB global status counter (e.g. Com_select)."""
    with db.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        return int(cur.fetchone()[1])


def parallel(fn, args, workers=50):
    """Run fn over args in threads; return the results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, args))


def assert_error(response, status, code):
    """The response is the one JSON error shape with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if status == 503:
        assert int(response.headers["Retry-After"]) >= 1
    return body["error"]


def get(url, **kwargs):
    """requests.get with a timeout, so a hang fails the test instead of stalling it."""
    kwargs.setdefault("timeout", 30)
    return requests.get(url, **kwargs)


def wait_for_status(url, status, timeout=10):
    """GET url until it answers `status`; return that response."""
    from deploy.processes import wait_for

    def attempt():
        response = get(url)
        return response if response.status_code == status else None

    return wait_for(attempt, timeout=timeout, message=f"{url} to answer {status}")


def metric(page, name, **labels):
    """The value of one series in a Prometheus text page (0 if absent); label order does not matter."""
    for line in page.splitlines():
        series = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if series and series.group(1) == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series.group(2) or ""))
            if found == labels:
                return float(series.group(3))
    return 0.0


def flower_get(url, **params):
    """Flower's JSON at url, with the tests' basic auth; None while Flower does not answer 200."""
    try:
        r = requests.get(url, params=params or None, auth=(FLOWER_USER, FLOWER_PASSWORD), timeout=10)
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


def raw_request(port, data):
    """Send raw bytes; return everything the server answered before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


MIGRATION_IDS = ["0001.baseline", "0002.retention-by-index", "0003.writes"]


def assert_upgraded_with_its_data(con):
    """The database of the `old_database` fixture, migrated: its rows as they were, the newest schema around them."""
    with con.cursor() as cur:
        cur.execute("SELECT k, data, version, tombstone_version FROM items ORDER BY k")
        assert cur.fetchall() == (("gone", None, 20, 20), ("live", '{"v": 1}', 10, None))
        cur.execute("SELECT seq FROM events")
        assert cur.fetchall() == ((30,),)
        cur.execute("SELECT version, write_id FROM dead_letters")
        assert cur.fetchall() == ((40, "w_x"),)
        cur.execute("SELECT COUNT(*) FROM writes")
        assert cur.fetchone() == (0,)
        cur.execute("SHOW INDEX FROM items WHERE Key_name = 'items_tombstones'")
        assert cur.fetchall()
