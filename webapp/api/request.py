"""What comes in through Flask: this process's storage, the body (bounded), keys from paths, the write adapter."""
from flask import Response, current_app, request
from werkzeug.routing import BaseConverter

from webapp.http.errors import PayloadTooLarge, UnsupportedMediaType
from webapp.http.keys import KeyRing
from webapp.http.paths import key_from_path
from webapp.http.writes import WriteRequest, accept, json_media_type
from webapp.storage.services import Services

EXTENSION = "spillway"  # app.extensions[EXTENSION]: this process's Services
KEYS = "spillway.keys"  # app.extensions[KEYS]: the KeyRing of API_KEYS


def storage() -> Services:
    """This process's storage (connections made on first use)."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def key_ring() -> KeyRing:
    """The API keys of this process."""
    return current_app.extensions[KEYS]  # type: ignore[no-any-return]


class AnyTextConverter(BaseConverter):
    """A path segment that may hold anything, '/' and newlines included.

    Werkzeug's `path` converter does not match a newline, so a key with one
    got a 404 instead of the 422 that says what is wrong with it.
    """

    regex = "[\\s\\S]+"
    part_isolating = False


def path_key() -> str:
    """The item key of this request's path (strict UTF-8, checked); 422 otherwise."""
    return key_from_path(request.environ.get("PATH_INFO", ""))


def read_body(limit: int) -> bytes:
    """The request body, at most `limit` bytes; 413 past it, chunked bodies included.

    Werkzeug's limited stream returns a chunked body cut off at the limit
    without an error when the cut falls between reads, so the body is read
    here, one byte past the limit, to tell "too large" from "exactly the limit".
    """
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge()
    environ = request.environ
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: read nothing
    data: bytes = environ["wsgi.input"].read(limit + 1 if length is None else length)
    if len(data) > limit:
        raise PayloadTooLarge()
    return data


def json_body() -> bytes:
    """The raw bytes of a JSON request body (decoded by webapp.http.schemas); 415 or 413 otherwise."""
    if not json_media_type(request.content_type):
        raise UnsupportedMediaType()
    return read_body(current_app.config["MAX_CONTENT_LENGTH"])


def write() -> Response:
    """A write through Flask: the one write path (webapp/http/writes.py), answered as a Flask response."""
    body = read_body(current_app.config["MAX_CONTENT_LENGTH"]) if request.method == "POST" else b""
    answer = accept(WriteRequest.from_environ(request.environ, body), storage().queue, key_ring())
    return Response(answer.body, status=answer.status, headers=answer.headers)
