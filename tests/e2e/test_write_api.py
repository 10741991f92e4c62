"""The write API at the door: auth, media type, size, JSON, validation, idempotency, receipts.

No drain worker runs here: every check is about what is (and is not) queued.
"""
import json
import socket

import pytest
import requests

from tests.e2e.helpers import API_KEY, DEPTH, OTHER_KEY, STREAM, assert_error, get, item_url, metric


def post(web, path, body, headers=None, raw=None):
    """POST JSON (or raw bytes) with the test key unless headers say otherwise."""
    h = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body)
    return requests.post(web.url + path, data=data, headers={k: v for k, v in h.items() if v is not None}, timeout=30)


def nothing_queued(rds):
    """True if no write reached the queue."""
    return rds.xlen(STREAM) == 0 and int(rds.get(DEPTH) or 0) == 0


def items(n, prefix="k"):
    return {"items": [{"key": f"{prefix}{i}", "data": {"i": i}} for i in range(n)]}


def test_post_items_answers_202_with_a_receipt(web, rds):
    r = post(web, "/api/v1/items", items(3))
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"write_id", "accepted", "status_url", "durability"} and body["accepted"] == 3
    assert body["durability"] == "aof"  # the mode in force: what this 202 promises
    assert r.headers["Location"] == body["status_url"] == f"/api/v1/writes/{body['write_id']}"
    receipt = get(web.url + body["status_url"]).json()
    assert receipt["status"] == "queued" and receipt["kind"] == "items"
    assert (receipt["accepted"], receipt["persisted"], receipt["dead"], receipt["persisted_at"]) == (3, 0, 0, None)
    assert receipt["accepted_at"].endswith("Z")
    assert rds.xlen(STREAM) == 1 and int(rds.get(DEPTH)) == 3  # depth counts records


def test_delete_of_a_missing_key_is_accepted(web):
    r = requests.delete(item_url(web.url, "never-existed"), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert r.status_code == 202 and r.json()["accepted"] == 1


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", f"Basic {API_KEY}", f"Bearer {API_KEY}x",
                                    f"bearer  {API_KEY[:-1]}"])
def test_writes_without_a_valid_key_are_401_and_queue_nothing(web, rds, header):
    assert_error(post(web, "/api/v1/items", items(1), {"Authorization": header}), 401, "unauthorized")
    assert_error(post(web, "/api/v1/events", {"events": [{"name": "x"}]}, {"Authorization": header}), 401, "unauthorized")
    assert nothing_queued(rds)


def test_any_header_bytes_in_authorization_are_a_clean_401(web, rds):
    request = (b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80ke\xc3y\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):  # until the server closes (Connection: close)
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401") and b'"unauthorized"' in reply
    assert nothing_queued(rds)


def test_both_configured_keys_work(web):
    assert post(web, "/api/v1/items", items(1), {"Authorization": f"bearer {OTHER_KEY}"}).status_code == 202


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1"])
def test_other_media_types_are_415(web, rds, content_type):
    assert_error(post(web, "/api/v1/items", items(1), {"Content-Type": content_type}), 415, "unsupported_media_type")
    assert nothing_queued(rds)


def test_json_with_parameters_is_accepted(web):
    assert post(web, "/api/v1/items", items(1), {"Content-Type": "application/json; charset=UTF-8"}).status_code == 202


@pytest.mark.parametrize("raw", [b"{", b"", b'{"items": [{"key": "a", "data": {"n": NaN}}]}',
                                 b'{"items": [{"key": "a", "data": {"n": Infinity}}]}', b'{"items": "\xff"}',
                                 b'{"items": [{"key": "\\ud800", "data": {}}]}', b"[" * 3000 + b"]" * 3000])
def test_malformed_json_is_400_invalid_json(web, rds, raw):
    assert_error(post(web, "/api/v1/items", None, raw=raw), 400, "invalid_json")
    assert nothing_queued(rds)


def test_body_over_max_body_bytes_is_413_content_length_or_chunked(web, rds):
    big = json.dumps({"items": [{"key": f"k{i}", "data": {"s": "x" * 60000}} for i in range(20)]}).encode()
    assert len(big) > 1024 * 1024
    assert_error(post(web, "/api/v1/items", None, raw=big), 413, "payload_too_large")
    chunked = (big[i:i + 65536] for i in range(0, len(big), 65536))  # a generator: sent chunked
    assert_error(post(web, "/api/v1/items", None, raw=chunked), 413, "payload_too_large")
    assert nothing_queued(rds)


@pytest.mark.parametrize("body, path", [
    ({}, "items"), ({"items": []}, "items"), ({"items": {}}, "items"), ([], "(body)"),
    ({"items": [{"key": "k", "data": {}}], "extra": 1}, "extra"),
    ({"items": [{"key": "k", "data": {}}] * 1001}, "items"),
    ({"items": [{"key": "k", "data": {}, "ttl": 5}]}, "items[0].ttl"),
    ({"items": [{"key": "k", "data": "text"}]}, "items[0].data"),
    ({"items": [{"key": "k", "data": {"big": "x" * 65536}}]}, "items[0].data"),
    ({"items": [{"key": "k\x7f", "data": {}}]}, "items[0].key"),
])
def test_wrong_shapes_are_422_with_paths(web, rds, body, path):
    err = assert_error(post(web, "/api/v1/items", body), 422, "validation_error")
    assert path in [d["path"] for d in err["details"]]
    assert nothing_queued(rds)


def test_a_batch_is_all_or_nothing(web, rds):
    body = items(999)
    body["items"].insert(500, {"key": "", "data": {}})
    err = assert_error(post(web, "/api/v1/items", body), 422, "validation_error")
    assert [d["path"] for d in err["details"]] == ["items[500].key"]
    assert nothing_queued(rds)
    assert get(item_url(web.url, "k1")).status_code == 404


@pytest.mark.parametrize("event, path", [
    ({"name": ""}, "events[0].name"), ({"name": "a", "level": "fatal"}, "events[0].level"),
    ({"name": "a", "occurred_at": "2026-01-01"}, "events[0].occurred_at"),
    ({"name": "a", "event_id": "x" * 65}, "events[0].event_id"),
    ({"name": "a", "data": {"s": "x" * 16384}}, "events[0].data"), ({"level": "info"}, "events[0].name"),
])
def test_bad_events_are_422(web, rds, event, path):
    err = assert_error(post(web, "/api/v1/events", {"events": [event]}), 422, "validation_error")
    assert path in [d["path"] for d in err["details"]]
    assert nothing_queued(rds)


def test_idempotency_key_replays_the_receipt_and_queues_nothing_more(web, rds):
    first = post(web, "/api/v1/items", items(2), {"Idempotency-Key": "order-1"})
    again = post(web, "/api/v1/items", items(2), {"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert rds.xlen(STREAM) == 1 and int(rds.get(DEPTH)) == 2
    # The same key with another body: 422, as draft-ietf-httpapi-idempotency-key-header says, nothing queued.
    reused = post(web, "/api/v1/items", items(3), {"Idempotency-Key": "order-1"})
    assert "Idempotency-Key" in assert_error(reused, 422, "idempotency_key_reused")["message"]
    assert rds.xlen(STREAM) == 1 and int(rds.get(DEPTH)) == 2
    assert metric(get(web.url + "/metrics").text, "spillway_write_refusals_total", reason="idempotency_key_reused") >= 1
    # The same Idempotency-Key under another API key is another request.
    other = post(web, "/api/v1/items", items(2), {"Idempotency-Key": "order-1", "Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 202 and other.json()["write_id"] != first.json()["write_id"]
    assert rds.xlen(STREAM) == 2


def test_unknown_or_malformed_write_ids_are_404(web):
    assert_error(get(web.url + "/api/v1/writes/w_" + "0" * 26), 404, "not_found")
    assert_error(get(web.url + "/api/v1/writes/../../etc"), 404, "not_found")


def test_reads_require_a_key_when_configured(fresh, start_web):
    web = start_web(READS_REQUIRE_KEY="true")
    for path in ("/api/v1/items/k", "/api/v1/items", "/api/v1/events", "/api/v1/writes/w_" + "0" * 26):
        assert_error(get(web.url + path), 401, "unauthorized")
    assert get(web.url + "/api/v1/items/k", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 404
    assert get(web.url + "/healthz").status_code == 200


def test_chunked_body_of_exactly_the_limit_is_accepted_one_byte_more_is_413(web, rds):
    body = json.dumps(items(1)).encode()
    limit = 1024 * 1024
    exact = body + b" " * (limit - len(body))  # JSON allows trailing white space
    assert post(web, "/api/v1/items", None, raw=iter([exact[:500000], exact[500000:]])).status_code == 202
    over = exact + b" "
    assert_error(post(web, "/api/v1/items", None, raw=iter([over[:500000], over[500000:]])), 413, "payload_too_large")
    assert rds.xlen(STREAM) == 1
