"""Observe, the outermost WSGI layer: whatever fails below it is still one JSON 500, logged and counted."""
import json
import logging

from webapp import metrics
from webapp.logs import request_lines
from webapp.server.observe import Observe


def _failing(environ, start_response):
    raise RuntimeError("a layer below Flask failed")


def _count(route, status):
    return metrics.REQUESTS.labels(route, "POST", status)._value.get()


def test_an_exception_below_flask_is_a_json_500_logged_and_counted(caplog, monkeypatch):
    lines = []
    monkeypatch.setattr(request_lines, "write", lines.append)
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered.update(status=status, headers=dict(headers))

    before = _count("/api/v1/items", "500")
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/items", "HTTP_X_REQUEST_ID": "req-1"}
    with caplog.at_level(logging.ERROR):
        body = b"".join(Observe(_failing)(environ, start_response))
    assert answered["status"].startswith("500 ")
    assert json.loads(body)["error"]["code"] == "internal_error"
    assert answered["headers"]["X-Request-ID"] == "req-1" and answered["headers"]["Content-Type"] == "application/json"
    assert any("unhandled error below Flask" in r.getMessage() and r.exc_info for r in caplog.records)  # traceback
    assert _count("/api/v1/items", "500") == before + 1
    (line,) = [json.loads(raw) for raw in lines]
    assert (line["status"], line["error"], line["request_id"]) == (500, "internal_error", "req-1")
