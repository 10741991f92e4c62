"""Every write (POST /api/v1/items, /api/v1/events, DELETE /api/v1/items/<key>), served below Flask.

A 24-item POST spent about 30% of a worker's CPU in Flask's dispatch and 12% in
the stdlib JSON parser and a validation library (profiled). This layer hands every write to
the one write path (webapp/http/writes.py), with the body BodyReader already
read in full, and writes its answer: a 202, or the error's JSON shape. No Flask
request is built for a write at all.
"""
from collections.abc import Iterable
from http import HTTPStatus
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from webapp.http.errors import APIError
from webapp.http.keys import KeyRing
from webapp.http.writes import WriteRequest, accept, is_write
from webapp.server.respond import error
from webapp.storage.queue import WriteQueue


class WriteFastPath:
    """WSGI middleware: answer every write with the one write path; pass everything else through."""

    def __init__(self, app: WSGIApplication, queue: WriteQueue, keys: KeyRing) -> None:
        self.app = app
        self.queue = queue
        self.keys = keys

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not is_write(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        # BodyReader has read any body in full into memory; no length means no body.
        body = environ["wsgi.input"].read() if environ.get("CONTENT_LENGTH") not in (None, "", "0") else b""
        try:
            answer = accept(WriteRequest.from_environ(environ, body), self.queue, self.keys)
        except APIError as err:
            return error(environ, start_response, err)
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}",
                       [*answer.headers, ("Content-Length", str(len(answer.body)))])
        return [answer.body]
