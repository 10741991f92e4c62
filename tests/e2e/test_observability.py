"""Logs, request ids and metrics of the live processes."""
import json
import re
import signal

import requests

from deploy.processes import wait_for
from tests.e2e.helpers import HEADERS, get, item_url, metric, parallel, put_row


def test_request_id_is_echoed_or_made_on_both_paths(web, db):
    put_row(db, "k", {})
    get(item_url(web.url, "k"))  # cached now: the next GET is served by the fast path
    for url in (item_url(web.url, "k"), item_url(web.url, "missing"), web.url + "/api/v1/items", web.url + "/nowhere"):
        r = get(url, headers={"X-Request-ID": "client-chosen.id-1"})
        assert r.headers["X-Request-ID"] == "client-chosen.id-1"
        made = get(url).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{16}", made)
    # An id that could forge log lines is replaced, not echoed.
    assert get(web.url + "/healthz", headers={"X-Request-ID": "x\ty"}).headers["X-Request-ID"] != "x\ty"


def test_one_json_log_line_per_request(web):
    r = get(item_url(web.url, "logged"), headers={"X-Request-ID": "trace-me-42"})
    assert r.status_code == 404

    def logged():
        for line in web.log().splitlines():
            if '"trace-me-42"' in line:
                return json.loads(line)
    entry = wait_for(logged, timeout=5, message="the request's log line")
    assert entry["event"] == "request" and entry["route"] == "/api/v1/items/<key>"
    assert entry["status"] == 404 and entry["error"] == "not_found"
    assert entry["method"] == "GET" and entry["duration_ms"] >= 0
    assert entry["ts"].endswith("Z")


def test_metrics_count_every_request_across_workers_and_queue_depth_returns_to_zero(web, db, rds, start_worker):
    put_row(db, "hot", {})
    page = get(web.url + "/metrics").text
    before = {
        "hit": metric(page, "spillway_http_requests_total", route="/api/v1/items/<key>", method="GET", status="200"),
        "miss": metric(page, "spillway_http_requests_total", route="/api/v1/items/<key>", method="GET", status="404"),
        "post": metric(page, "spillway_http_requests_total", route="/api/v1/items", method="POST", status="202"),
        "bad": metric(page, "spillway_http_requests_total", route="/api/v1/items", method="POST", status="422"),
    }
    parallel(lambda i: get(item_url(web.url, "hot")), range(150), workers=30)
    parallel(lambda i: get(item_url(web.url, f"none-{i % 7}")), range(40), workers=10)
    posts = parallel(lambda i: requests.post(web.url + "/api/v1/items", headers=HEADERS, timeout=30,
                                             data=json.dumps({"items": [{"key": f"m{i}", "data": {}}]})), range(25))
    assert {p.status_code for p in posts} == {202}
    requests.post(web.url + "/api/v1/items", headers=HEADERS, data="{}", timeout=30)
    page = get(web.url + "/metrics").text
    assert metric(page, "spillway_http_requests_total", route="/api/v1/items/<key>", method="GET", status="200") - before["hit"] == 150
    assert metric(page, "spillway_http_requests_total", route="/api/v1/items/<key>", method="GET", status="404") - before["miss"] == 40
    assert metric(page, "spillway_http_requests_total", route="/api/v1/items", method="POST", status="202") - before["post"] == 25
    assert metric(page, "spillway_http_requests_total", route="/api/v1/items", method="POST", status="422") - before["bad"] == 1
    assert metric(page, "spillway_http_request_duration_seconds_count", route="/api/v1/items/<key>", method="GET") >= 190
    assert metric(page, "spillway_write_queue_depth") == 25
    assert metric(page, "spillway_cache_requests_total", result="hit") >= 149
    start_worker(DRAIN_TASK_SECONDS=2)
    wait_for(lambda: metric(get(web.url + "/metrics").text, "spillway_write_queue_depth") == 0, timeout=30,
             message="queue depth 0 in /metrics")
    page = get(web.url + "/metrics").text
    assert metric(page, "spillway_records_persisted_total", kind="items") == 25
    assert metric(page, "spillway_write_lag_seconds_count") == 25
    assert metric(page, "spillway_drain_batch_size_records_count") >= 1
    assert metric(page, "spillway_drain_workers_alive") >= 1


def test_worker_logs_one_json_line_per_drain_task(web, start_worker):
    worker = start_worker(DRAIN_TASK_SECONDS=1)
    requests.post(web.url + "/api/v1/items", headers=HEADERS, timeout=30,
                  data=json.dumps({"items": [{"key": "w", "data": {}}]}))

    def task_lines():
        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        tasks = [line for line in lines if line.get("event") == "task" and line.get("task") == "spillway.drain"]
        return tasks if any(t.get("rows") for t in tasks) else None
    tasks = wait_for(task_lines, timeout=20, message="a drain task's log line")
    assert {"task_id", "task", "state", "duration_ms", "rows", "lag_ms_max"} <= set(tasks[-1])
    assert tasks[-1]["task"] == "spillway.drain"
    # Celery's own log lines are JSON too: none in its plain "[2026-..." format.
    assert not [line for line in worker.log().splitlines() if line.startswith("[20")]


def test_request_lines_still_buffered_are_written_when_a_worker_exits(fresh, start_web):
    web = start_web()
    assert get(item_url(web.url, "last-words"), headers={"X-Request-ID": "written-at-exit"}).status_code == 404
    # SIGQUIT: gunicorn's quick shutdown, so the worker exits well before the half-second flush
    # (SIGTERM's graceful stop outlasts it, and the periodic flush alone would write the line)
    web.stop(sig=signal.SIGQUIT)
    assert '"written-at-exit"' in web.log()
