"""The HTTP API: one blueprint per resource; views stay thin. Shared request helpers."""
import hashlib

from flask import current_app, request
from werkzeug.routing import BaseConverter

from webapp import jsonio
from webapp.errors import InvalidJSON, PayloadTooLarge, UnsupportedMediaType, ValidationFailed


class AnyTextConverter(BaseConverter):
    """A path segment that may hold anything, '/' and newlines included.

    Werkzeug's `path` converter does not match a newline, so a key with one
    got a 404 instead of the 422 that says what is wrong with it.
    """

    regex = "[\\s\\S]+"
    part_isolating = False


def services():
    """This process's Services (connections and helpers)."""
    return current_app.extensions["spillway"]


def read_body(limit):
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
    data = environ["wsgi.input"].read(limit + 1 if length is None else length)
    if len(data) > limit:
        raise PayloadTooLarge()
    return data


def json_body():
    """(raw bytes, parsed value) of a JSON request body; 415, 413 or 400 otherwise."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("Send the body as UTF-8 JSON ('Content-Type: application/json').")
    raw = read_body(current_app.config["MAX_CONTENT_LENGTH"])
    try:
        return raw, jsonio.loads(raw)
    except jsonio.JSONError as err:
        raise InvalidJSON(f"The body is not valid JSON: {err}.") from None


def idempotency(raw):
    """Keyword arguments for WriteQueue.append from the Idempotency-Key header."""
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return {}
    if not 1 <= len(header) <= 255:
        raise ValidationFailed(details=[{"path": "Idempotency-Key", "message": "must be 1 to 255 characters"}])
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode() + raw).hexdigest()[:32]
    return {"idempotency_key": header, "request_hash": digest}


def accepted(receipt):
    """202 with the write's receipt and its status URL in Location."""
    return jsonio.response(receipt, 202, {"Location": receipt["status_url"]})
