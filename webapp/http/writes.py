"""The one write path: POST /api/v1/items, POST /api/v1/events and DELETE /api/v1/items/<key>.

Both doors run this code: the WSGI layer below Flask (webapp/server/writes.py),
which takes every write in gunicorn, and the Flask views (webapp/api/items.py,
events.py), thin adapters for an app run without those layers. A write is
checked in this order, each check answering its own 4xx and nothing queued:
the key and its `write` scope (401, 403), the media type (415), the body (400,
422, all or nothing), the Idempotency-Key (422); then the queue (202, or 422 for a reused
Idempotency-Key, 429, 503 from storage).
"""
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webapp import jsonio
from webapp.http import decode, limits, paths, ratelimit
from webapp.http.errors import UnsupportedMediaType, ValidationFailed, from_storage
from webapp.http.keys import KeyRing
from webapp.http.render import receipt_body
from webapp.storage.errors import StorageError
from webapp.storage.queue import WriteQueue
from webapp.storage.records import Item, Record

Decoder = Callable[[bytes], list[Any]]
_BODIES: dict[str, Decoder] = {limits.ITEMS: decode.items, limits.EVENTS: decode.events}


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """What a write needs of an HTTP request, whichever door it came through."""

    method: str
    path: str  # PATH_INFO, as the server decoded it (latin-1 text of the raw bytes)
    content_type: str | None
    authorization: str | None
    idempotency_key: str | None
    body: bytes

    @classmethod
    def from_environ(cls, environ: dict[str, Any], body: bytes) -> "WriteRequest":
        """The write in a WSGI environ, its body already read."""
        return cls(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("CONTENT_TYPE"),
                   environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_IDEMPOTENCY_KEY"), body)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to write: status, headers and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def is_write(method: str, path: str) -> bool:
    """True for the requests this module answers."""
    if method == "POST":
        return path in _BODIES
    return method == "DELETE" and path.startswith(limits.ITEM_PREFIX)


def json_media_type(content_type: str | None) -> bool:
    """True for application/json, with no parameter but a UTF-8 charset."""
    kind, *params = (content_type or "").split(";")
    return kind.strip().lower() == "application/json" and all(
        p.strip().lower() in ("charset=utf-8", "charset=utf8", "") for p in params)


def idempotency_key_ok(header: str) -> bool:
    """True for an Idempotency-Key header the API takes: 1 to 255 characters."""
    return 1 <= len(header) <= limits.MAX_IDEMPOTENCY_KEY_CHARS


def request_digest(method: str, path: str, raw: bytes) -> str:
    """What an Idempotency-Key is bound to: the method, the path and the body."""
    return hashlib.sha256(f"{method} {path}\n".encode("utf-8", "surrogateescape") + raw).hexdigest()[:32]


def records_of(request: WriteRequest) -> list[Record]:
    """The records a write request carries; 415, 400 or 422 otherwise."""
    if request.method == "DELETE":
        return [Item(paths.key_from_path(request.path), None)]
    if not json_media_type(request.content_type):
        raise UnsupportedMediaType()
    return _BODIES[request.path](request.body)


def accept(request: WriteRequest, queue: WriteQueue, keys: KeyRing) -> Answer:
    """Check, queue and answer one write (202 with its receipt); raises APIError with nothing queued."""
    caller = keys.require(request.authorization, "write")
    records = records_of(request)
    options: dict[str, str] = {}
    if request.idempotency_key is not None:
        if not idempotency_key_ok(request.idempotency_key):
            raise ValidationFailed(details=[{
                "path": "Idempotency-Key", "message": f"must be 1 to {limits.MAX_IDEMPOTENCY_KEY_CHARS} characters"}])
        body = b"" if request.method == "DELETE" else request.body
        options = {"idempotency_key": request.idempotency_key,
                   "request_hash": request_digest(request.method, request.path, body)}
    try:
        receipt = queue.append(records, caller.key_id, **options)
    except StorageError as err:
        raise from_storage(err) from None
    out = receipt_body(receipt)
    headers = [("Content-Type", "application/json"), ("Location", out["status_url"])]
    if receipt.rate is not None:  # WRITE_RATE_LIMIT is set
        headers += ratelimit.headers(receipt.rate).items()
    return Answer(202, headers, jsonio.encode(out))
