"""What comes in: this process's storage, the body (bounded, strict JSON), keys from paths, Idempotency-Key."""
import hashlib
from typing import Any

from flask import current_app, request
from werkzeug.routing import BaseConverter

from webapp import jsonio
from webapp.api.schemas import key_or_error
from webapp.errors import InvalidJSON, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from webapp.storage.services import Services

EXTENSION = "spillway"  # app.extensions[EXTENSION]: this process's Services
ITEM_PATH = "/api/v1/items/"
PEEKED = "spillway.peeked"  # set by webapp/server/fastpath.py: Redis was already asked, and missed


def storage() -> Services:
    """This process's storage (connections made on first use)."""
    return current_app.extensions[EXTENSION]


class AnyTextConverter(BaseConverter):
    """A path segment that may hold anything, '/' and newlines included.

    Werkzeug's `path` converter does not match a newline, so a key with one
    got a 404 instead of the 422 that says what is wrong with it.
    """

    regex = "[\\s\\S]+"
    part_isolating = False


def key_from_path(path_info: str, prefix: str = ITEM_PATH) -> str:
    """The item key after `prefix` in a WSGI PATH_INFO, decoded as strict UTF-8; 422 if invalid.

    Flask's converter would turn invalid UTF-8 into U+FFFD and so name a
    different key; keys are compared byte for byte, so decode it here.
    """
    try:
        key = path_info.encode("latin-1")[len(prefix):].decode("utf-8")
    except UnicodeError:
        raise ValidationFailed(details=[{"path": "key", "message": "must be percent-encoded UTF-8"}]) from None
    return key_or_error(key)


def path_key() -> str:
    """The item key of this request's path."""
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


def json_body() -> tuple[bytes, Any]:
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


def idempotency(raw: bytes) -> dict[str, str]:
    """Keyword arguments for WriteQueue.append from the Idempotency-Key header."""
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return {}
    if not idempotency_key_ok(header):
        raise ValidationFailed(details=[{"path": "Idempotency-Key", "message": "must be 1 to 255 characters"}])
    return {"idempotency_key": header, "request_hash": request_digest(request.method, request.path, raw)}


def idempotency_key_ok(header: str) -> bool:
    """True for an Idempotency-Key header the API takes: 1 to 255 characters."""
    return 1 <= len(header) <= 255


def request_digest(method: str, path: str, raw: bytes) -> str:
    """What an Idempotency-Key is bound to: the method, the path and the body."""
    return hashlib.sha256(f"{method} {path}\n".encode() + raw).hexdigest()[:32]
