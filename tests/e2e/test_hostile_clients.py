"""What a hostile client can send: made-up methods, crafted cursors. Each gets a 4xx and costs nothing."""
import base64
import json
import random
import string

import pytest

from tests.e2e.helpers import assert_error, get, raw_request


def status_line(port, method, path="/healthz"):
    """Send one request with any method; return the status line."""
    reply = raw_request(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return reply.split(b"\r\n", 1)[0].decode()


def test_made_up_methods_do_not_grow_the_metrics_page(web):
    before = len(get(web.url + "/metrics").text)
    rng = random.Random(7)
    for _ in range(300):
        method = "".join(rng.choice(string.ascii_uppercase) for _ in range(12))
        assert status_line(web.port, method).split(" ")[1] in ("405", "404", "400")
    page = get(web.url + "/metrics").text
    assert len(page) < before + 5000  # before: 14 KB -> 545 KB
    assert 'method="other"' in page


def cursor(position):
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path, position", [
    ("/api/v1/events", {"t": 10**30, "s": 1}),             # before: 500, and a pooled connection discarded
    ("/api/v1/events", {"t": 1e30, "s": 1}),
    ("/api/v1/events", {"t": 1, "s": 2**70}),
    ("/api/v1/events", {"t": True, "s": 1}),
    ("/api/v1/items", {"k": "x" * 300}),
    ("/api/v1/items", {"k": "tab\there"}),
    ("/api/v1/items", {"k": ""}),
])
def test_every_cursor_a_client_can_craft_is_a_422(web, path, position):
    err = assert_error(get(f"{web.url}{path}?cursor={cursor(position)}"), 422, "validation_error")
    assert err["details"][0]["path"] == "cursor"
