"""Operations and hostile clients: reloads under load, rate limits, gunicorn's limits, slow clients."""
import json
import re
import signal
import socket
import threading
import time

import requests

from deploy.processes import wait_for
from tests.e2e.helpers import DEPTH, HEADERS, assert_error, get, item_url, put_row, raw_request


class Load:
    """Threads that read and write through keep-alive sessions and record every outcome."""

    def __init__(self, url, threads=16):
        self.url = url
        self.stop = threading.Event()
        self.statuses, self.errors, self.accepted = [], [], []
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n):
        session, i = requests.Session(), 0
        while not self.stop.is_set():
            i += 1
            try:
                if i % 4:
                    r = session.get(item_url(self.url, "hot"), timeout=10)
                else:
                    key = f"hup-{n}-{i}"
                    r = session.post(self.url + "/api/v1/items", headers=HEADERS, timeout=10,
                                     data=json.dumps({"items": [{"key": key, "data": {"n": n, "i": i}}]}))
                    if r.status_code == 202:
                        self.accepted.append(key)
                self.statuses.append(r.status_code)
            except requests.RequestException as err:
                self.errors.append(repr(err))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def worker_pids(web):
    return set(web.children())


def test_hup_twice_and_a_worker_restart_under_load_fail_no_request_and_lose_no_write(fresh, start_web, start_worker,
                                                                                     db, rds):
    web = start_web()
    put_row(db, "hot", {"hot": True})
    worker = start_worker(DRAIN_TASK_SECONDS=2)
    with Load(web.url) as load:
        time.sleep(1)
        for _ in range(2):
            before = worker_pids(web)
            web.send_signal(signal.SIGHUP)
            wait_for(lambda before=before: len(worker_pids(web)) == 2 and not worker_pids(web) & before, timeout=30,
                     message="gunicorn to replace its workers")
            time.sleep(2)
        worker.send_signal(signal.SIGTERM)  # supervisorctl restart worker
        worker.proc.wait(60)
        start_worker(DRAIN_TASK_SECONDS=2)
        time.sleep(2)
    assert load.statuses and not load.errors, load.errors[:5]
    assert set(load.statuses) == {200, 202}
    wait_for(lambda: int(rds.get(DEPTH) or 0) == 0, timeout=60, message="the queue to drain")
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items WHERE k LIKE 'hup-%%'")
        assert cur.fetchone()[0] == len(load.accepted) > 0


def test_writes_past_the_rate_limit_get_429_with_retry_after_and_queue_nothing(fresh, start_web, rds):
    web = start_web(WRITE_RATE_LIMIT="5/second")
    body = json.dumps({"items": [{"key": "k", "data": {}}]})
    answers = [requests.post(web.url + "/api/v1/items", headers=HEADERS, data=body, timeout=10) for _ in range(8)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [202] * 5 and 429 in codes[5:]
    limited = next(a for a in answers if a.status_code == 429)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert int(rds.get(DEPTH)) == codes.count(202)  # nothing of the refused writes was queued
    time.sleep(1.1)
    assert requests.post(web.url + "/api/v1/items", headers=HEADERS, data=body, timeout=10).status_code == 202
    # Reads are never rate limited.
    assert all(get(item_url(web.url, "k")).status_code == 200 for _ in range(20))


def rate_fields(answer):
    """(RateLimit-Policy, r, t) of an answer's RateLimit header fields."""
    match = re.fullmatch(r'"writes";r=(\d+);t=(\d+)', answer.headers["RateLimit"])
    return answer.headers["RateLimit-Policy"], int(match[1]), int(match[2])


def test_writes_say_what_the_rate_limit_leaves_in_ratelimit_headers(fresh, start_web, web):
    limited = start_web(WRITE_RATE_LIMIT="5/10s")  # bursts of 5, then one every 2 s
    body = json.dumps({"items": [{"key": "k", "data": {}}]})

    def write(**headers):
        return requests.post(limited.url + "/api/v1/items", headers={**HEADERS, **headers}, data=body, timeout=10)

    first = write(**{"Idempotency-Key": "once"})
    replay = write(**{"Idempotency-Key": "once"})  # a replay takes nothing of the rate
    rest = [write() for _ in range(5)]
    assert [a.status_code for a in (first, replay, *rest)] == [202] * 6 + [429]
    fields = [rate_fields(a) for a in (first, replay, *rest)]
    assert {policy for policy, _, _ in fields} == {'"writes";q=5;w=10'}
    assert [r for _, r, _ in fields] == [4, 4, 3, 2, 1, 0, 0]
    # t: until the whole burst is back, 2 s a write (a second less if these writes took over a second)
    assert all(expected - 1 <= t <= expected for (_, _, t), expected in zip(fields, [2, 2, 4, 6, 8, 10]))
    # The 429: nothing left, and t is its Retry-After (the draft: Retry-After not before t).
    assert_error(rest[-1], 429, "rate_limited")
    assert fields[-1][2] == int(rest[-1].headers["Retry-After"]) in (1, 2)
    # Without WRITE_RATE_LIMIT, no such fields.
    plain = requests.post(web.url + "/api/v1/items", headers=HEADERS, data=body, timeout=10)
    assert plain.status_code == 202 and "RateLimit" not in plain.headers and "RateLimit-Policy" not in plain.headers


def test_requests_gunicorn_refuses_still_get_json_errors(shared_web):
    cases = [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414", b"uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", b"431", b"header_fields_too_large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n", b"431",
         b"header_fields_too_large"),
        (b"\x16\x03\x01 garbage\r\n\r\n", b"400", b"bad_request"),
    ]
    for data, status, code in cases:
        reply = raw_request(shared_web.port, data)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status and b"application/json" in head, reply[:300]
        assert json.loads(body)["error"]["code"] == code.decode()


def test_slow_clients_do_not_hold_up_other_requests(web):
    sockets = []
    try:
        for _ in range(300):  # slowloris: headers that never end
            s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(s)
        started = time.monotonic()
        for _ in range(20):
            assert get(web.url + "/healthz").status_code == 200
            assert get(item_url(web.url, "nothing")).status_code == 404
        assert time.monotonic() - started < 10
    finally:
        for s in sockets:
            s.close()
