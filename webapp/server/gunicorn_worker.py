"""gunicorn's gevent worker, accepting new connections in batches.

With more than one worker, gunicorn's gevent worker sets the StreamServer's
max_accept to 1, so that one worker does not take every connection. But a
busy worker then accepts a single connection per event-loop pass, and a pass
takes milliseconds under load: a burst of 2,000 new connections left first
requests waiting 2 to 7 seconds in the listen queue (measured: up to 13% of
requests over 2 s in a run started right after another). Accepting up to
ACCEPT_BATCH per pass fixed that. The batch stays small because the first
worker to wake takes a whole batch: with 64, 50 new connections split 35/17
between two workers and one worker did most of the work; with 8, 27/25.

Requests gunicorn itself refuses (a request line or header past the limits in
gunicorn.conf.py, malformed HTTP) get the API's JSON error shape instead of
gunicorn's HTML page. Everything else (gunicorn's HTTP parser, limits,
graceful reload) is unchanged.
"""
import json
import time
from typing import Any

import gevent
from gevent.server import StreamServer
from gunicorn import glogging, util
from gunicorn.http import wsgi
from gunicorn.workers import ggevent

from webapp.config import load_settings

ACCEPT_BATCH = 8
SEND_TIMEOUT_S = load_settings().web_send_timeout
_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
          431: "header_fields_too_large", 500: "internal_error", 501: "not_implemented"}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error answer, as {"error": {"code", "message"}} (replaces util.write_error)."""
    message = f"{reason}: {mesg}." if mesg else f"{reason}."
    body = json.dumps({"error": {"code": _CODES.get(status_int, "bad_request"), "message": message}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class BatchAcceptServer(StreamServer):  # type: ignore[misc]  # gunicorn and gevent are untyped
    """A StreamServer whose max_accept stays ACCEPT_BATCH (gunicorn's run() sets 1)."""

    max_accept = property(lambda self: ACCEPT_BATCH, lambda self, value: None)


class OneSendResponse(wsgi.Response):  # type: ignore[misc]  # gunicorn and gevent are untyped
    """gunicorn's response, putting its head and its body on the wire in one send.

    gunicorn sends a response's head, then its body: two system calls, and under
    gevent two trips through the hub. Measured with py-spy on a cached GET at 500
    connections: 15% of a worker's CPU in socket sends. A response with a known
    length (every answer of this API) now goes out in one. Chunked ones, and
    anything else, keep gunicorn's way.
    """

    _head = b""
    headers_sent: bool
    chunked: bool

    def send_headers(self) -> None:
        if self.headers_sent or self.chunked:
            super().send_headers()
            return
        lines = self.default_headers()
        lines.extend(f"{k}: {v}\r\n" for k, v in self.headers)
        self._head = util.to_bytestring("".join(lines) + "\r\n", "latin-1")
        self.headers_sent = True  # held back until the body (or close) goes out with it

    def _emit_body(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        # A client that stops reading would hold this response (a list page: megabytes) for as long as it
        # likes: past WEB_SEND_TIMEOUT its connection is closed (the Timeout ends the request; gunicorn
        # closes the socket) and the memory goes.
        with gevent.Timeout(SEND_TIMEOUT_S, ConnectionError("the client did not take the response in time")):
            super()._emit_body(data)

    def close(self) -> None:
        self.send_headers()  # an empty body iterable never called write(): the head is not even built yet
        if self._head:  # no body came (HEAD, 204, an empty answer): the head alone
            head, self._head = self._head, b""
            util.write(self.sock, head)
        super().close()


_date: list[Any] = [None, ""]  # the last second formatted for the Date header, and its text


def http_date(timestamp: float | None = None) -> str:
    """gunicorn's Date header, formatted once a second instead of once a response (1.7% of a cached GET)."""
    if timestamp is not None:
        return str(_gunicorn_http_date(timestamp))
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, _gunicorn_http_date(now)
    return str(_date[1])


_gunicorn_http_date = util.http_date


class GeventWorker(ggevent.GeventWorker):  # type: ignore[misc]  # gunicorn and gevent are untyped
    """gunicorn's gevent worker with batched accepts and one send per response (worker_class in gunicorn.conf.py)."""

    def run(self) -> None:
        """Build the servers with BatchAcceptServer, then run as gunicorn does."""
        ggevent.StreamServer = BatchAcceptServer  # the name gunicorn's run() looks up
        wsgi.Response = OneSendResponse  # what wsgi.create() builds, in this process only
        util.write_error = write_json_error  # what handle_error() calls, in this process only
        util.http_date = http_date  # what default_headers() calls, in this process only
        super().run()


class Logger(glogging.Logger):  # type: ignore[misc]  # gunicorn and gevent are untyped
    """gunicorn's logger with its access log off (logger_class in gunicorn.conf.py).

    The app writes one JSON line per request itself (webapp/server/observe.py).
    With logconfig_dict set, gunicorn counted its access log as enabled, built a
    record of the whole environ for every request and dropped it: 18% of a
    cached GET's CPU (measured with py-spy). accesslog = None did not stop it.
    """

    def _compute_access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Nothing: see the class doc."""
