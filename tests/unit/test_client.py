"""The client's own logic: chunking, Retry-After, jitter, error mapping and when it retries.

A tiny local http.server plays Spillway's HTTP answers (scripted per test);
what the answers do to MySQL, Redis and Celery is tested against the real
stack in tests/e2e/test_client.py.
"""
import ast
import asyncio
import datetime
import email.utils
import json
import logging
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from spillway_client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    DeadlineExceeded,
    Event,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRecord,
    Item,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Receipt,
    ServerError,
    Spillway,
    SpillwayError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
    WriteDead,
    WriteStatus,
)
from spillway_client.chunks import MAX_BODY_BYTES, chunks, item_record
from spillway_client.errors import error_for
from spillway_client.retry import BACKOFF_MAX, backoff, parse_retry_after, retry_delay
from webapp.config import ROOT

CLIENT = ROOT / "client" / "spillway_client"


# --- chunking ---------------------------------------------------------------------------------

def _records(n, size=0):
    return [{"key": f"k{i:05d}", "data": {"i": i, "pad": "x" * size}} for i in range(n)]


def test_2500_records_are_three_chunks_of_at_most_1000_in_order():
    out = list(chunks(_records(2500), "items"))
    assert [count for _, count in out] == [1000, 1000, 500]
    decoded = [json.loads(body) for body, _ in out]
    assert [r["data"]["i"] for d in decoded for r in d["items"]] == list(range(2500))


def test_chunks_stay_within_the_body_limit_and_fill_it():
    records = _records(100, size=60_000)  # ~60 KB each: 17 fit in 1 MiB
    out = list(chunks(records, "items"))
    assert all(len(body) <= MAX_BODY_BYTES for body, _ in out)
    assert sum(count for _, count in out) == 100
    assert [count for _, count in out][:-1] == [17] * 5
    # each chunk is full: the next record would not have fitted
    one = len(json.dumps(records[0], separators=(",", ":")))
    assert all(len(body) + one + 1 > MAX_BODY_BYTES for body, _ in out[:-1])


def test_a_body_exactly_at_the_limit_is_kept_and_one_byte_more_splits():
    records = _records(3)
    whole = next(chunks(records, "items"))[0]
    assert list(chunks(records, "items", max_body_bytes=len(whole))) == [(whole, 3)]
    assert [n for _, n in chunks(records, "items", max_body_bytes=len(whole) - 1)] == [2, 1]


def test_a_record_larger_than_any_body_goes_alone_for_the_server_to_refuse():
    big = {"key": "big", "data": {"pad": "x" * 2_000_000}}
    out = list(chunks([{"key": "a", "data": {}}, big, {"key": "b", "data": {}}], "items"))
    assert [n for _, n in out] == [1, 1, 1] and b"big" in out[1][0]


def test_chunks_are_made_lazily_from_a_generator():
    taken = []

    def gen():
        for r in _records(5000):
            taken.append(r)
            yield r

    it = chunks(gen(), "items")
    next(it)
    assert len(taken) == 1001  # the first chunk is sent before the rest is read


def test_records_are_compact_utf8_and_nan_is_refused():
    body, _ = next(chunks([{"key": "é", "data": {"t": "😀"}}], "items"))
    assert body == '{"items":[{"key":"é","data":{"t":"😀"}}]}'.encode()
    with pytest.raises(ValueError):
        next(chunks([{"key": "n", "data": {"x": float("nan")}}], "items"))


def test_items_as_pairs_or_dicts():
    assert item_record(("k", {"a": 1})) == {"key": "k", "data": {"a": 1}}
    assert item_record({"key": "k", "data": {}}) == {"key": "k", "data": {}}
    with pytest.raises(TypeError):
        item_record("k")


# --- Retry-After and jitter ---------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [
    ("5", 5.0), (" 1 ", 1.0), ("1.5", 1.5), ("0", 0.0), ("-3", 0.0), ("86400", 300.0),
    (None, None), ("", None), ("soon", None), ("nan", None), ("Wed, 21 Oct 2015 07:28:00", None),
])
def test_retry_after_in_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date():
    now = time.time()
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert 5.5 <= parse_retry_after(header, now=now) <= 7.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


def test_jitter_never_comes_back_before_retry_after_and_adds_at_most_a_fifth():
    rng = random.Random(1)
    for retry_after in (0.0, 0.3, 1.0, 5.0, 30.0):
        delays = [retry_delay(retry_after, 1, rng) for _ in range(2000)]
        assert min(delays) >= retry_after
        assert max(delays) <= retry_after + max(0.1, 0.2 * retry_after)
        assert max(delays) - min(delays) > 0.5 * max(0.1, 0.2 * retry_after)  # really spread


def test_backoff_without_retry_after_doubles_with_jitter_up_to_a_cap():
    rng = random.Random(2)
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, BACKOFF_MAX), (100, BACKOFF_MAX)]:
        delays = [backoff(attempt, rng) for _ in range(500)]
        assert cap / 2 <= min(delays) and max(delays) <= cap
        assert retry_delay(None, attempt, rng) <= cap


# --- error mapping ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [
    (400, BadRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound), (409, Conflict),
    (413, PayloadTooLarge), (422, ValidationError), (429, RateLimited), (503, Unavailable),
    (500, ServerError), (502, ServerError), (405, SpillwayError), (408, SpillwayError),
])
def test_each_status_has_its_class_and_carries_the_json_error(status, kind):
    details = [{"path": "items[0].key", "message": "too long"}]
    err = error_for(status, {"error": {"code": "some_code", "message": "Some sentence.", "details": details}}, 2.0)
    assert type(err) is kind and isinstance(err, SpillwayError)
    assert (err.status, err.code, err.message, err.details, err.retry_after) == (
        status, "some_code", "Some sentence.", details, 2.0)
    assert str(err) == f"{status} some_code: Some sentence."


def test_an_answer_that_is_not_the_json_error_shape_still_maps():
    err = error_for(502, None, text="<html>\n<h1>502 Bad Gateway</h1></html>")
    assert type(err) is ServerError and err.code == "http_502" and "Bad Gateway" in err.message
    assert err.details is None


# --- against a stub of the HTTP answers ---------------------------------------------------------------

class Stub:
    """A local HTTP server answering from a script: a list of answers, each
    (status, body, headers), "close" (drop the connection without answering) or a
    function of the request; past the script, `default`. Records every request."""

    def __init__(self):
        self.script = []
        self.default = None
        self.requests = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                with stub.lock:
                    stub.requests.append(request)
                    answer = stub.script.pop(0) if stub.script else stub.default
                if callable(answer):
                    answer = answer(request)
                if answer == "close":
                    self.close_connection = True
                    return
                status, payload, headers = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stub():
    server = Stub()
    yield server
    server.stop()


class AsyncRunner:
    """AsyncClient shaped like Client for the tests below: each call runs to its end in an event loop of its
    own, with a fresh AsyncClient (an httpx client belongs to the loop it first ran in); a list comes back
    as a list."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __getattr__(self, name):
        async def call(*args, **kwargs):
            async with AsyncClient(*self.args, **self.kwargs) as api:
                result = getattr(api, name)(*args, **kwargs)
                return [x async for x in result] if hasattr(result, "__aiter__") else await result

        return lambda *args, **kwargs: asyncio.run(call(*args, **kwargs))


@pytest.fixture(params=["Client", "AsyncClient"])
def Api(request):
    """Client, and AsyncClient run to completion: every test taking it runs once with each."""
    return Client if request.param == "Client" else AsyncRunner


def accepted(request):
    """A 202 for a write: a fresh write id, the count of records in the body."""
    body = json.loads(request["body"] or b"{}")
    count = len(body.get("items") or body.get("events") or [None])
    write_id = "w_" + f"{len(request['body']) + count:026x}"[-26:]
    return 202, {"write_id": write_id, "accepted": count, "status_url": f"/api/v1/writes/{write_id}"}, {}


def event(seq):
    """An event as a list answers it."""
    return {"seq": seq, "event_id": None, "name": "signup", "level": "info", "occurred_at": "2024-01-02T03:04:05Z",
            "received_at": "2024-01-02T03:04:06.5Z", "data": {"n": seq}}


def error(status, code, retry_after=None, details=None):
    body = {"error": {"code": code, "message": f"a {code}"}}
    if details is not None:
        body["error"]["details"] = details
    return status, body, {"Retry-After": retry_after} if retry_after is not None else {}


def test_a_503_is_retried_with_the_same_idempotency_key_and_the_same_body(stub, Api):
    stub.script = [error(503, "queue_unavailable", "0"), "close", error(429, "rate_limited", "0")]
    stub.default = accepted
    with Api(stub.url, "k1") as api:
        receipts = api.put_items([("a", {"n": 1}), ("b", {"n": 2})])
    assert len(receipts) == 1 and receipts[0].accepted == 2
    assert len(stub.requests) == 4
    assert len({r["headers"]["Idempotency-Key"] for r in stub.requests}) == 1
    assert len({r["body"] for r in stub.requests}) == 1
    assert receipts[0].idempotency_key == stub.requests[0]["headers"]["Idempotency-Key"]
    first = stub.requests[0]
    assert first["headers"]["Authorization"] == "Bearer k1" and first["headers"]["Content-Type"] == "application/json"


def test_each_chunk_has_its_own_idempotency_key(stub, Api):
    stub.default = accepted
    with Api(stub.url, "k") as api:
        receipts = api.put_items({"key": f"k{i}", "data": {}} for i in range(2500))
    assert [r.accepted for r in receipts] == [1000, 1000, 500]
    assert len({r["headers"]["Idempotency-Key"] for r in stub.requests}) == 3


def test_retry_after_is_honoured(stub, Api):
    stub.script = [error(429, "rate_limited", "1")]
    stub.default = accepted
    started = time.monotonic()
    with Api(stub.url, "k") as api:
        api.post_events([{"name": "e"}])
    assert 1.0 <= time.monotonic() - started < 4  # waited the second it was told to (slack: a busy machine)
    assert len(stub.requests) == 2


@pytest.mark.parametrize(("status", "code", "kind"), [
    (422, "validation_error", ValidationError), (401, "unauthorized", Unauthorized),
    (422, "idempotency_key_reused", IdempotencyKeyReused), (409, "idempotency_conflict", IdempotencyKeyReused),
    (413, "payload_too_large", PayloadTooLarge), (400, "invalid_json", BadRequest), (500, "internal_error", ServerError),
])
def test_other_errors_are_raised_at_once_with_the_servers_error(stub, status, code, kind, Api):
    details = [{"path": "items[0].data", "message": "must be a JSON object"}] if status == 422 else None
    stub.default = error(status, code, details=details)
    with Api(stub.url, "k") as api, pytest.raises(kind) as caught:
        api.put_items([("a", {})])
    assert len(stub.requests) == 1
    assert (caught.value.status, caught.value.code, caught.value.details) == (status, code, details)


def test_a_reused_idempotency_key_is_both_a_conflict_and_a_validation_error():
    err = error_for(422, {"error": {"code": "idempotency_key_reused", "message": "Used with another body."}})
    assert isinstance(err, Conflict) and isinstance(err, ValidationError) and err.status == 422
    assert type(error_for(422, {"error": {"code": "validation_error", "message": "x"}})) is ValidationError


def test_a_failed_chunk_reports_the_receipts_of_the_chunks_before_it(stub, Api):
    stub.script = [accepted, error(422, "validation_error")]
    with Api(stub.url, "k", max_records=2) as api, pytest.raises(ValidationError) as caught:
        api.put_items([(f"k{i}", {}) for i in range(6)])
    assert [r.accepted for r in caught.value.receipts] == [2]
    assert len(stub.requests) == 2  # the third chunk was never sent


def test_a_record_that_is_no_record_stops_the_batch_with_the_receipts_so_far(stub, Api):
    stub.default = accepted
    with Api(stub.url, "k", max_records=2) as api, pytest.raises(InvalidRecord) as caught:
        api.put_items([("a", {}), ("b", {}), ("c", {}), "oops"])
    assert isinstance(caught.value, ValueError) and len(caught.value.receipts) == 1


def test_the_deadline_ends_the_retries_and_keeps_the_last_error(stub, Api):
    stub.default = error(503, "backpressure", "0")
    started = time.monotonic()
    with Api(stub.url, "k", deadline=1.5) as api, pytest.raises(DeadlineExceeded) as caught:
        api.put_items([("a", {})])
    took = time.monotonic() - started
    assert took < 1.5 + 3  # ends at the deadline, not retrying on (the slack is for a busy machine)
    err = caught.value
    assert isinstance(err.last_error, Unavailable) and err.last_error.code == "backpressure"
    assert (err.status, err.code) == (503, "backpressure") and err.attempts == len(stub.requests) > 3


def test_a_retry_after_past_the_deadline_gives_up_at_once(stub, Api):
    stub.default = error(503, "backpressure", "5")
    started = time.monotonic()
    with Api(stub.url, "k", deadline=2) as api, pytest.raises(DeadlineExceeded):
        api.put_items([("a", {})])
    assert time.monotonic() - started < 3 and len(stub.requests) == 1  # not after the 5 s it was told


def test_a_refused_connection_is_retried_until_the_deadline(Api):
    port = Stub()  # take a port, then free it: nothing listens there
    url = port.url
    port.stop()
    with Api(url, "k", deadline=1) as api, pytest.raises(DeadlineExceeded) as caught:
        api.get("a")
    assert isinstance(caught.value.last_error, ConnectionFailed) and caught.value.attempts > 2
    assert caught.value.status is None


def test_a_slow_answer_times_out_and_is_retried(stub, Api):
    def slow(request):
        time.sleep(1)
        return accepted(request)

    stub.script = [slow]
    stub.default = accepted
    with Api(stub.url, "k", timeout=0.3) as api:
        assert api.put_items([("a", {})])[0].accepted == 1
    assert len(stub.requests) == 2


def test_get_answers_none_on_404_and_quotes_the_key(stub, Api):
    stub.script = [error(404, "not_found"), (200, {"key": "a/b c", "data": {}, "version": 1, "updated_at": "2024-05-01T12:00:00.000001Z"}, {})]
    with Api(stub.url, "k") as api:
        assert api.get("nope") is None
        assert api.get("a/b c").key == "a/b c"
    assert stub.requests[1]["path"] == "/api/v1/items/a%2Fb%20c"


def test_delete_sends_an_idempotency_key(stub, Api):
    stub.default = accepted
    with Api(stub.url, "k") as api:
        receipt = api.delete("x")
    assert isinstance(receipt, Receipt)
    assert stub.requests[0]["method"] == "DELETE" and stub.requests[0]["headers"]["Idempotency-Key"]


def test_lists_follow_the_next_cursor(stub, Api):
    stub.script = [(200, {"events": [event(3), event(2)], "next": "c1"}, {}),
                   (200, {"events": [event(1)], "next": None}, {})]
    since = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    with Api(stub.url, "k") as api:
        assert [e.seq for e in api.list_events(name="signup", since=since, page_size=2)] == [3, 2, 1]
    first, second = (r["path"] for r in stub.requests)
    assert "name=signup" in first and "since=2024-01-02T03%3A04%3A05%2B00%3A00" in first and "limit=2" in first
    assert "cursor=c1" in second and "name=signup" in second
    with pytest.raises(ValueError):
        list(Api(stub.url, "k").list_events(since=datetime.datetime(2024, 1, 1)))  # naive: ambiguous


def test_wait_persisted_polls_until_persisted(stub, Api):
    def status(state):
        return 200, {"write_id": "w_1", "status": state, "accepted": 1, "persisted": 1, "dead": 0}, {}

    stub.script = [status("queued"), error(503, "cache_unavailable", "0"), status("queued"), status("persisted")]
    with Api(stub.url, "k") as api:
        done = api.wait_persisted([Receipt("w_1", 1, "/api/v1/writes/w_1")])
    assert done[0].status == "persisted" and len(stub.requests) == 4


def test_wait_persisted_raises_on_a_dead_write_and_on_timeout(stub, Api):
    stub.default = (200, {"write_id": "w_1", "status": "dead", "accepted": 2, "persisted": 1, "dead": 1}, {})
    with Api(stub.url, "k") as api, pytest.raises(WriteDead) as caught:
        api.wait_persisted(["w_1"])
    assert caught.value.receipt.dead == 1
    stub.default = (200, {"write_id": "w_2", "status": "queued"}, {})
    started = time.monotonic()
    with Api(stub.url, "k") as api, pytest.raises(WaitTimeout) as waited:
        api.wait_persisted([{"write_id": "w_2"}], timeout=0.5)
    assert waited.value.pending == ["w_2"] and isinstance(waited.value, DeadlineExceeded)
    assert time.monotonic() - started < 3  # at its 0.5 s timeout, not polling on


def test_a_session_passed_in_is_used_and_left_open(stub):
    stub.default = accepted
    session = requests.Session()
    seen = []
    session.hooks["response"].append(lambda r, *args, **kwargs: seen.append(r.status_code))
    with Spillway(stub.url, "k", session=session) as api:
        api.put_items([("a", {})])
    assert seen == [202]
    assert session.adapters  # not closed by the client
    session.close()


def test_a_receipt_is_typed_and_says_how_durable_the_202_is(stub, Api):
    stub.default = lambda request: (202, {**accepted(request)[1], "durability": "replica"},
                                    {"X-Request-ID": request["headers"]["X-Request-ID"]})
    with Api(stub.url, "k") as api:
        [receipt] = api.put_items([("a", {})])
    assert isinstance(receipt, Receipt) and receipt.durability == "replica" and receipt.accepted == 1
    assert receipt.request_id == stub.requests[0]["headers"]["X-Request-ID"]


def test_items_events_and_statuses_are_typed_with_aware_datetimes(stub, Api):
    stub.script = [(200, {"key": "k", "data": {"a": 1}, "version": 7, "updated_at": "2024-05-01T12:00:00.5Z"}, {}),
                   (200, {"events": [event(1)], "next": None}, {}),
                   (200, {"write_id": "w_1", "kind": "items", "status": "persisted", "accepted": 2, "persisted": 2,
                          "dead": 0, "accepted_at": "2024-05-01T12:00:00Z", "persisted_at": "2024-05-01T12:00:01Z",
                          "new_field": "ignored"}, {})]
    utc = datetime.UTC
    with Api(stub.url, "k") as api:
        assert api.get("k") == Item("k", {"a": 1}, 7, datetime.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=utc))
        [ev] = list(api.list_events())
        assert isinstance(ev, Event) and ev.received_at == datetime.datetime(2024, 1, 2, 3, 4, 6, 500000, tzinfo=utc)
        status = api.write_status("w_1")
    assert status == WriteStatus("w_1", "persisted", "items", 2, 2, 0, datetime.datetime(2024, 5, 1, 12, tzinfo=utc),
                                 datetime.datetime(2024, 5, 1, 12, 0, 1, tzinfo=utc))


def test_every_error_carries_the_request_id_each_attempt_its_own(stub, Api):
    stub.script = [error(503, "backpressure", "0"), "close"]
    stub.default = lambda request: (422, {"error": {"code": "validation_error", "message": "no"}},
                                    {"X-Request-ID": request["headers"]["X-Request-ID"]})
    with Api(stub.url, "k") as api, pytest.raises(ValidationError) as caught:
        api.put_items([("a", {})])
    sent = [r["headers"]["X-Request-ID"] for r in stub.requests]
    call = sent[0].rsplit("-", 1)[0]
    assert sent == [f"{call}-1", f"{call}-2", f"{call}-3"]  # one call, three attempts
    assert caught.value.request_id == sent[2] and f"(request {sent[2]})" in str(caught.value)
    stub.script, stub.default = [], error(503, "backpressure", "0")
    with Api(stub.url, "k", deadline=0.5) as api, pytest.raises(DeadlineExceeded) as gave_up:
        api.get("a")
    assert gave_up.value.request_id == stub.requests[-1]["headers"]["X-Request-ID"]


def test_a_refused_connection_error_carries_the_request_id_it_was_sent_with(Api):
    port = Stub()
    url = port.url
    port.stop()
    with Api(url, "k", deadline=0.3) as api, pytest.raises(DeadlineExceeded) as caught:
        api.get("a")
    assert isinstance(caught.value.last_error, ConnectionFailed)
    assert caught.value.request_id and caught.value.request_id == caught.value.last_error.request_id


def test_url_and_key_come_from_the_environment_when_not_given(stub, Api, monkeypatch):
    stub.default = accepted
    monkeypatch.setenv("SPILLWAY_URL", stub.url)
    monkeypatch.setenv("SPILLWAY_API_KEY", "from-env")
    with Api() as api:
        api.put_items([("a", {})])
    with Api(key="given") as api:
        api.delete("a")
    assert [r["headers"]["Authorization"] for r in stub.requests] == ["Bearer from-env", "Bearer given"]
    monkeypatch.delenv("SPILLWAY_URL")
    with pytest.raises(ValueError, match="SPILLWAY_URL"):
        Client()
    with pytest.raises(ValueError, match="SPILLWAY_URL"):
        AsyncClient()


def test_each_retry_is_logged_as_a_warning_with_attempt_wait_and_reason(stub, Api, caplog):
    stub.script = [error(503, "backpressure", "0.2"), "close"]
    stub.default = accepted
    with caplog.at_level(logging.WARNING, logger="spillway_client"), Api(stub.url, "k") as api:
        api.put_items([("a", {})])
    retries = [r for r in caplog.records if r.name == "spillway_client"]
    assert [(r.levelno, r.attempt) for r in retries] == [(logging.WARNING, 1), (logging.WARNING, 2)]
    assert retries[0].reason == "503 backpressure" and 0.2 <= retries[0].wait <= 0.3
    assert "RemoteDisconnected" in retries[1].reason or "RemoteProtocolError" in retries[1].reason
    assert retries[0].request_id == stub.requests[0]["headers"]["X-Request-ID"]
    assert "POST /api/v1/items: attempt 1 failed (503 backpressure); retrying in" in retries[0].getMessage()


def test_an_async_client_serves_many_tasks_at_once(stub):
    stub.default = accepted

    async def main():
        async with AsyncClient(stub.url, "k") as api:
            return await asyncio.gather(*(api.put_items([(f"k{i}", {})]) for i in range(20)))

    receipts = asyncio.run(main())
    assert len(receipts) == 20 and len({r[0].idempotency_key for r in receipts}) == 20


# --- the package stands alone -----------------------------------------------------------------------

def test_the_client_imports_only_the_standard_library_requests_httpx_and_itself():
    """`pip install ./client` brings only requests and httpx: no import of the server's code or its libraries."""
    imported = set()
    for path in Path(CLIENT).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names == {"requests", "httpx", "spillway_client"}
