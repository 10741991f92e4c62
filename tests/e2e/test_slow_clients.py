"""Slow clients hold nothing: a body is read in full, within BODY_READ_TIMEOUT, before any shared capacity."""
import json
import socket
import time

from tests.e2e.helpers import API_KEY, STREAM, get, item_url, put_row


def stalled_upload(port, chunked=False):
    """A socket that sent an authorized POST's headers and part of its body, then stalls."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps({"items": [{"key": "stalled", "data": {"x": "y" * 500}}]}).encode()
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(body)}\r\n"
    s.sendall((f"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
               f"Content-Type: application/json\r\n{framing}\r\n").encode())
    s.sendall(f"{len(body):x}\r\n".encode() + body[:40] if chunked else body[:40])
    return s


def read_all(s):
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data.decode(errors="replace")


def test_stalled_uploads_do_not_starve_cached_reads_and_get_408_with_nothing_queued(fresh, db, rds, start_web):
    # 400 uploads (200 per worker) stall mid-body: more than WEB_MAX_ACTIVE requests per worker.
    web = start_web(WEB_MAX_ACTIVE=50, BODY_READ_TIMEOUT=6)
    put_row(db, "hot", {"v": 1})
    assert get(item_url(web.url, "hot")).status_code == 200  # cached now
    uploads = [stalled_upload(web.port, chunked=n % 2 == 1) for n in range(400)]
    time.sleep(1)
    for _ in range(5):  # cached reads still answer at once (before: a 30 s timeout)
        r = get(item_url(web.url, "hot"), timeout=2)
        assert r.status_code == 200 and r.json()["data"] == {"v": 1}
    statuses = []
    for s in uploads:
        answer = read_all(s)  # the whole answer, then the server closes the connection
        statuses.append(answer.split(" ", 2)[1] if answer else "closed")
        assert not answer or ('"request_timeout"' in answer and "Connection: close" in answer), answer
        s.close()
    assert statuses == ["408"] * 400
    assert rds.xlen(STREAM) == 0 and rds.get("spillway:queue:depth") is None  # nothing was queued


def test_a_body_that_arrives_in_time_is_accepted(fresh, rds, start_web):
    web = start_web(BODY_READ_TIMEOUT=5)
    s = stalled_upload(web.port)
    body = json.dumps({"items": [{"key": "stalled", "data": {"x": "y" * 500}}]}).encode()
    time.sleep(1)
    s.sendall(body[40:])  # the rest, well within the timeout
    assert s.recv(4096).startswith(b"HTTP/1.1 202")
    s.close()
    assert rds.xlen(STREAM) == 1
