"""Every request, fast path included: a request id, one JSON log line, Prometheus metrics.

The outermost WSGI layer, so its duration includes the wait for admission.
The request id comes from X-Request-ID when the client (or a proxy) sent a
sane one, else it is made here; it is echoed in the response and logged.
"""
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from webapp import jsonio, metrics
from webapp.http.environ import ERROR_CODE, FORCE_CLOSE, REQUEST_ID
from webapp.http.errors import APIError
from webapp.logs import request_lines, timestamp
from webapp.server.respond import error

log = logging.getLogger(__name__)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Any upper-case word is a method to gunicorn; a label per made-up method grew /metrics
# without bound (300 random methods: 14 KB to 545 KB, measured). Others count as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_EXACT_ROUTES = frozenset({"/api/v1/items", "/api/v1/items:get", "/api/v1/events", "/healthz", "/readyz", "/metrics",
                           "/openapi.json"})
_PREFIX_ROUTES = (("/api/v1/items/", "/api/v1/items/<key>"), ("/api/v1/writes/", "/api/v1/writes/<write_id>"))


def route_of(path: str) -> str:
    """The route template of a path (bounded label values: unknown paths are 'other')."""
    if path in _EXACT_ROUTES:
        return path
    for prefix, route in _PREFIX_ROUTES:
        if path.startswith(prefix):
            return route
    return "other"


class Observe:
    """WSGI middleware: request id, JSON request log line, request metrics."""

    def __init__(self, app: WSGIApplication, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        if not _SANE_ID.match(request_id):
            request_id = os.urandom(8).hex()
        environ[REQUEST_ID] = request_id
        # gunicorn's start_response is a method of its Response, which can close the connection.
        environ[FORCE_CLOSE] = getattr(getattr(start_response, "__self__", None), "force_close", None)
        answered: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request_id))
            answered.append(status)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start)
        except Exception:  # a layer below Flask failed: the one error shape, logged and counted like any answer
            log.exception("unhandled error below Flask on %s %s", environ["REQUEST_METHOD"][:16],
                          environ.get("PATH_INFO", "")[:256], extra={"fields": {"request_id": request_id}})
            body = error(environ, start, APIError())
        seconds = time.perf_counter() - started
        status = answered[0][:3] if answered else "500"
        method = environ["REQUEST_METHOD"] if environ["REQUEST_METHOD"] in _METHODS else "other"
        path = environ.get("PATH_INFO", "")
        route = route_of(path)
        metrics.count_request(route, method, status, seconds)
        if self.log_requests:
            line = {"ts": timestamp(), "level": "info", "event": "request", "request_id": request_id,
                    "method": environ["REQUEST_METHOD"][:16], "route": route, "path": path[:256], "status": int(status),
                    "duration_ms": round(seconds * 1000, 2), "remote": environ.get("REMOTE_ADDR", "")}
            if ERROR_CODE in environ:
                line["error"] = environ[ERROR_CODE]
            request_lines.write(jsonio.dumps(line))
        return body
