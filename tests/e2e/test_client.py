"""The Python client (client/, spillway_client) against the live stack.

Round trips through every call, a batch cut into chunks, and the two faults a
client must ride out without losing or doubling a record: Redis frozen
(SIGSTOP) while a batch is being sent, and the web server stopped (or killed)
and started again on the same port mid-upload. Events are sent without
event_id, so a chunk queued twice would show as twice the rows in MySQL.
"""
import asyncio
import collections
import datetime
import json
import re
import signal
import socket
import threading
import time

import pytest
import requests

from deploy.processes import free_port, wait_for
from spillway_client import (
    AsyncClient,
    Client,
    DeadlineExceeded,
    PayloadTooLarge,
    Unauthorized,
    ValidationError,
)
from tests.e2e.helpers import API_KEY, FAST, scalar

UTC = datetime.UTC


class CountingSession(requests.Session):
    """A requests session that counts what the client met: answers by status, and failures with no answer."""

    def __init__(self):
        super().__init__()
        self.statuses = collections.Counter()
        self.failures = []

    def request(self, *args, **kwargs):
        try:
            response = super().request(*args, **kwargs)
        except requests.RequestException as err:
            self.failures.append(type(err).__name__)
            raise
        self.statuses[response.status_code] += 1
        return response


class LosingProxy:
    """A TCP proxy in front of a web server that can lose one answer: once `lose_next` is set, the
    next answer the server sends is read, kept in `lost`, and never reaches the client, whose
    connection is closed. The server has done the work (queued the write); the client saw none of it."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lose_next = threading.Event()
        self.lost = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, answers), daemon=True).start()

    def _pump(self, src, dst, answers):
        try:
            while data := src.recv(65536):
                if answers and self.lose_next.is_set():
                    self.lose_next.clear()
                    src.settimeout(2)
                    while b"write_id" not in data and (more := src.recv(65536)):
                        data += more  # the whole answer, to tell which write it was
                    self.lost.append(data)
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.listener.close()


def gated_events(count, gate_at, reached, go_on):
    """Events {"name": "load", "data": {"i": i}} (no event_id); before event `gate_at` is made, signal
    `reached` and wait for `go_on`. With 1000-record chunks, gate_at=1001 pauses the upload
    right after the first chunk's 202 and before the second chunk is sent."""
    for i in range(count):
        if i == gate_at:
            reached.set()
            assert go_on.wait(60), "the test never let the upload go on"
        yield {"name": "load", "data": {"i": i}}


def assert_each_event_stored_once(db, count):
    with db.cursor() as cur:
        cur.execute("SELECT data FROM events WHERE name = 'load'")
        seen = collections.Counter(json.loads(data)["i"] for (data,) in cur.fetchall())
    doubled = {i: n for i, n in seen.items() if n > 1}
    assert not doubled, f"{len(doubled)} events stored more than once"
    assert sorted(seen) == list(range(count)), f"{count - len(seen)} events missing"


def upload_in_thread(api, events):
    """Run api.post_events(events) in a thread; return (thread, outcome dict with receipts or error)."""
    outcome = {}

    def run():
        try:
            outcome["receipts"] = api.post_events(events)
        except Exception as err:  # reported by the test, not lost in the thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# --- round trips ---------------------------------------------------------------------------------

def test_items_round_trip_put_get_list_delete_and_wait_persisted(web, start_worker):
    start_worker(**FAST)
    with Client(web.url, API_KEY) as api:
        receipts = api.put_items([("rt/1", {"n": 1}), {"key": "rt/2", "data": {"n": 2}}, ("rt/é 3", {"n": 3}),
                                  ("other", {"n": 4})])
        assert [r.accepted for r in receipts] == [4]
        assert receipts[0].write_id.startswith("w_") and receipts[0].idempotency_key
        assert api.get("rt/1").data == {"n": 1}  # read-your-writes, before the drain
        assert api.get("rt/é 3").data == {"n": 3}  # the key is percent-encoded in the path
        assert api.get("never") is None
        done = api.wait_persisted(receipts, timeout=60)
        assert [(d.status, d.persisted, d.dead) for d in done] == [("persisted", 4, 0)]
        # page_size=1: the iterator follows three `next` cursors
        assert [i.key for i in api.list_items(prefix="rt/", page_size=1)] == ["rt/1", "rt/2", "rt/é 3"]
        assert len(list(api.list_items())) == 4

        deleted = api.delete("rt/1")
        assert deleted.accepted == 1
        assert api.get("rt/1") is None
        api.wait_persisted([deleted], timeout=60)
        assert [i.key for i in api.list_items(prefix="rt/")] == ["rt/2", "rt/é 3"]


def test_events_round_trip_post_list_filters(web, start_worker):
    start_worker(**FAST)
    t0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    events = [{"name": "signup" if n % 2 else "login", "level": "warning" if n == 3 else "info",
               "occurred_at": t0 + datetime.timedelta(minutes=n), "data": {"n": n}} for n in range(6)]
    with Client(web.url, API_KEY) as api:
        api.wait_persisted(api.post_events(events), timeout=60)
        assert [e.data["n"] for e in api.list_events(page_size=2)] == [5, 4, 3, 2, 1, 0]  # newest first
        assert [e.data["n"] for e in api.list_events(name="signup", page_size=1)] == [5, 3, 1]
        assert [e.data["n"] for e in api.list_events(level="warning")] == [3]
        window = api.list_events(since=t0 + datetime.timedelta(minutes=2), until="2024-05-01T12:04:00Z")
        assert [e.data["n"] for e in window] == [3, 2]  # since inclusive, until exclusive


def test_errors_come_back_typed_with_the_servers_json_error(web):
    with Client(web.url, API_KEY) as api:
        with pytest.raises(ValidationError) as invalid:
            api.put_items([("ok", {}), ("", {})])
        assert invalid.value.status == 422 and invalid.value.code == "validation_error"
        assert invalid.value.details[0]["path"] == "items[1].key"
        with pytest.raises(PayloadTooLarge) as large:  # one record past MAX_BODY_BYTES goes alone and is refused
            api.put_items([("big", {"pad": "x" * (1024 * 1024)})])
        assert large.value.status == 413 and large.value.code == "payload_too_large"
    with Client(web.url, "not-a-key") as api, pytest.raises(Unauthorized) as unauthorized:
        api.delete("x")
    assert unauthorized.value.status == 401 and unauthorized.value.code == "unauthorized"


def test_the_async_client_round_trip_with_typed_answers(web, start_worker, db):
    """AsyncClient against the live server: a chunked batch, read-your-writes, persistence, lists, a delete."""
    start_worker(**FAST)

    async def main():
        async with AsyncClient(web.url, API_KEY, max_records=2) as api:
            receipts = await api.put_items((f"as/{i}", {"i": i}) for i in range(5))
            assert [r.accepted for r in receipts] == [2, 2, 1]
            assert {r.durability for r in receipts} == {"aof"} and all(r.request_id for r in receipts)
            item = await api.get("as/3")
            assert item.data == {"i": 3} and item.updated_at.tzinfo is not None  # before the drain
            assert await api.get("never") is None
            done = await api.wait_persisted(receipts, timeout=60)
            assert [(d.status, d.kind) for d in done] == [("persisted", "items")] * 3
            assert [i.key async for i in api.list_items(prefix="as/", page_size=2)] == [f"as/{i}" for i in range(5)]
            events = await api.post_events([{"name": "async", "data": {"n": n}} for n in range(3)])
            await api.wait_persisted(events, timeout=60)
            assert [e.data["n"] async for e in api.list_events(name="async")] == [2, 1, 0]
            deleted = await api.delete("as/0")
            assert await api.get("as/0") is None
            await api.wait_persisted([deleted], timeout=60)
            with pytest.raises(ValidationError) as invalid:
                await api.put_items([("", {})])
            return invalid.value

    invalid = asyncio.run(main())
    assert invalid.status == 422 and invalid.details[0]["path"] == "items[0].key" and invalid.request_id
    assert scalar(db, "SELECT COUNT(*) FROM items WHERE deleted = 0") == 4


def test_an_error_names_the_request_id_the_server_logged_it_under(web):
    with Client(web.url, API_KEY) as api, pytest.raises(ValidationError) as caught:
        api.put_items([("ok", {}), ("", {})])
    request_id = caught.value.request_id
    assert request_id and f"(request {request_id})" in str(caught.value)

    def logged():
        for line in web.log().splitlines():
            if request_id in line and line.startswith("{"):
                return json.loads(line)
        return None

    line = wait_for(logged, timeout=10, message="the server's log line of the request")
    assert (line["request_id"], line["status"]) == (request_id, 422)


def test_a_2500_record_batch_is_three_writes_every_record_persisted_once(web, start_worker, db):
    start_worker(**FAST)
    with Client(web.url, API_KEY) as api:
        receipts = api.put_items((f"c{i:04d}", {"i": i}) for i in range(2500))
        assert [r.accepted for r in receipts] == [1000, 1000, 500]
        assert len({r.write_id for r in receipts}) == 3
        done = api.wait_persisted(receipts, timeout=90)
        assert {(d.status, d.dead) for d in done} == {("persisted", 0)}
        events = api.post_events({"name": "load", "data": {"i": i}} for i in range(2500))
        assert [r.accepted for r in events] == [1000, 1000, 500]
        api.wait_persisted(events, timeout=90)
    assert scalar(db, "SELECT COUNT(*) FROM items") == 2500
    assert_each_event_stored_once(db, 2500)


def test_the_deadline_ends_retries_against_a_server_that_is_gone(fresh, start_web):
    web = start_web()
    web.stop()
    started = time.monotonic()
    with Client(web.url, API_KEY, deadline=2) as api, pytest.raises(DeadlineExceeded) as caught:
        api.put_items([("k", {})])
    assert time.monotonic() - started < 3
    assert caught.value.status is None and caught.value.code == "connection_error" and caught.value.attempts > 2


# --- faults the client rides out ------------------------------------------------------------------

def test_a_frozen_redis_mid_batch_every_event_stored_exactly_once(fresh, start_web, start_worker, servers_restored, db):
    """Redis is SIGSTOPped for 4 s between the first chunk's 202 and the second chunk, so the second
    chunk meets a Redis that answers nothing: the server answers 503 after REDIS_TIMEOUT, and a command
    Redis reads late is refused by the accept script. The client retries the chunk under the same
    Idempotency-Key until Redis is back."""
    web = start_web()
    start_worker(**FAST)
    count = 3000
    reached, go_on = threading.Event(), threading.Event()
    session = CountingSession()
    api = Client(web.url, API_KEY, session=session)
    thread, outcome = upload_in_thread(api, gated_events(count, 1001, reached, go_on))
    assert reached.wait(30), outcome
    servers_restored.redis.signal(signal.SIGSTOP)
    go_on.set()
    time.sleep(4)
    servers_restored.redis.signal(signal.SIGCONT)
    thread.join(90)
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert [r.accepted for r in outcome["receipts"]] == [1000, 1000, 1000]
    assert session.statuses[503] >= 1, session.statuses  # the freeze was met, and ridden out
    api.wait_persisted(outcome["receipts"], timeout=90)
    assert_each_event_stored_once(db, count)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_web_restart_mid_upload_every_event_stored_exactly_once(fresh, start_web, start_worker, db, how):
    """The gunicorn the client talks to goes away and a new one starts on the same port.

    stop: a graceful SIGTERM right after the first chunk's 202; the client meets a closed port and
    retries until the new server answers. kill: SIGKILL of the master and its workers while the
    upload runs, so a chunk in flight may be queued with its 202 lost; the retry's Idempotency-Key
    gets its receipt again instead of a second copy.
    """
    port = free_port()
    web = start_web(PORT=port)
    start_worker(**FAST)
    count = 3000 if how == "stop" else 20_000
    reached, go_on = threading.Event(), threading.Event()
    session = CountingSession()
    api = Client(web.url, API_KEY, session=session, max_records=1000 if how == "stop" else 200)
    if how == "kill":
        go_on.set()  # no pause: the kill lands wherever the upload is
    thread, outcome = upload_in_thread(api, gated_events(count, 1001, reached, go_on))
    assert reached.wait(30), outcome
    if how == "stop":
        web.stop()
        go_on.set()
        time.sleep(1)  # the client meets a closed port and backs off
    else:
        web.kill()
        assert thread.is_alive(), "the upload finished before the kill; send more"
    start_web(PORT=port)
    thread.join(90)
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert sum(r.accepted for r in outcome["receipts"]) == count
    assert session.failures, "the client never met the restart"
    api.wait_persisted(outcome["receipts"], timeout=90)
    assert_each_event_stored_once(db, count)


def test_an_answer_lost_after_the_write_was_queued_queues_nothing_twice(web, start_worker, db):
    """The second chunk reaches the server and is queued, but its 202 is lost on the way back and the
    connection closes. The client cannot tell this from a write that never arrived, so it sends the
    chunk again with the same Idempotency-Key: the server answers the first receipt, queues nothing,
    and every event is stored once (without the key, the chunk's 1000 events would be stored twice)."""
    start_worker(**FAST)
    proxy = LosingProxy(web.port)
    reached, go_on = threading.Event(), threading.Event()
    session = CountingSession()
    api = Client(proxy.url, API_KEY, session=session)
    thread, outcome = upload_in_thread(api, gated_events(3000, 1001, reached, go_on))
    try:
        assert reached.wait(30), outcome
        proxy.lose_next.set()
        go_on.set()
        thread.join(60)
    finally:
        proxy.close()
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert session.failures, "the lost answer was not noticed"
    [lost] = proxy.lost
    assert lost.startswith(b"HTTP/1.1 202")
    lost_id = re.search(rb'"write_id":"(w_[0-9a-f]+)"', lost).group(1).decode()
    assert [r.write_id for r in outcome["receipts"]][1] == lost_id  # the retry got the first receipt again
    api.wait_persisted(outcome["receipts"], timeout=90)
    assert_each_event_stored_once(db, 3000)
