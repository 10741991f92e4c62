"""Request bodies are read in full, within BODY_READ_TIMEOUT, before a request takes any shared capacity.

An upload that stalls mid-body used to take an admission slot first and then
wait on the socket with no time limit: 400 stalled authenticated uploads made
a cached GET time out after 30 s (measured). Here, outside admission control,
the body is read into memory (at most MAX_BODY_BYTES) under a gevent timeout:
a client that does not finish in time gets 408 `request_timeout`, one that
sends too much 413, and neither reaches the app, so nothing is queued. A
stalled upload holds only its own greenlet and socket.
"""
import io
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import gevent

from webapp.http.errors import APIError, BadRequest, PayloadTooLarge, RequestTimeout
from webapp.server.respond import error

CHUNK = 64 * 1024


class BodyReader:
    """WSGI middleware: buffer the request body (bounded in size and time) before the app sees it."""

    def __init__(self, app: WSGIApplication, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        codings = [c.strip().lower() for c in environ.get("HTTP_TRANSFER_ENCODING", "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]  # a coding that changes nothing
        if codings and codings != ["chunked"]:
            # `gzip, chunked` and the like: gunicorn passed them on unbuffered, and a view read them with
            # no time limit, holding an admission slot. Refused at once, before any capacity is taken.
            return error(environ, start_response, BadRequest(
                f"Transfer-Encoding {environ['HTTP_TRANSFER_ENCODING']!r} is not supported: send the body as "
                "it is, with Content-Length or 'Transfer-Encoding: chunked'.", headers={"Connection": "close"}))
        chunked = codings == ["chunked"]
        if not chunked and length in ("", "0"):
            return self.app(environ, start_response)
        try:
            body = self._read(environ["wsgi.input"], int(length) if length.isdigit() else None)
        except APIError as err:
            return error(environ, start_response, err)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input_terminated"] = True
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    def _read(self, stream: Any, length: int | None) -> bytes:
        """The whole body; 413 past the limit, 408 if it does not arrive in time."""
        if length is not None and length > self.limit:
            raise PayloadTooLarge(headers={"Connection": "close"})
        want = self.limit + 1 if length is None else length
        parts, size = [], 0
        try:
            with gevent.Timeout(self.timeout):
                while size < want:
                    part = stream.read(min(CHUNK, want - size))
                    if not part:
                        break
                    parts.append(part)
                    size += len(part)
        except gevent.Timeout:
            raise RequestTimeout() from None
        if size > self.limit:
            raise PayloadTooLarge(headers={"Connection": "close"})
        return b"".join(parts)
