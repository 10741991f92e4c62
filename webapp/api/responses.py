"""What goes out: JSON responses, the 202 receipt, item JSON, and the one error shape.

init_app registers the handlers that turn API errors, storage errors,
Werkzeug's HTTP errors and anything unexpected into
{"error": {"code", "message", "details"?}}. A 500 is logged with its
traceback and never shows it.
"""
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from webapp import clock, errors, jsonio
from webapp.storage import errors as storage
from webapp.storage.queue import Receipt

log = logging.getLogger(__name__)

# Storage errors as the API names them; the first matching class wins.
_FROM_STORAGE: list[tuple[type[storage.StorageError], type[errors.APIError]]] = [
    (storage.PoolTimeout, errors.PoolTimeout),
    (storage.DatabaseUnavailable, errors.DatabaseUnavailable),
    (storage.QueueUnavailable, errors.QueueUnavailable),
    (storage.RedisUnavailable, errors.CacheUnavailable),
    (storage.ReplicationTimeout, errors.ReplicationTimeout),
    (storage.IdempotencyConflict, errors.Conflict),
    (storage.RateLimited, errors.RateLimited),
    (storage.Backpressure, errors.Backpressure),
]
_HTTP: dict[int, type[errors.APIError]] = {404: errors.NotFound, 405: errors.MethodNotAllowed,
                                           413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; `body` is a value or already-encoded JSON text/bytes."""
    if not isinstance(body, (str, bytes)):
        body = jsonio.encode(body)
    return Response(body, status=status, headers=headers, content_type="application/json")


def accepted(receipt: Receipt) -> Response:
    """202 with the write's receipt and its status URL in Location."""
    return json_response(receipt.as_dict(), 202, {"Location": receipt.status_url})


def item_json(key: str, data: str, version: int, updated_us: int) -> str:
    """One item as JSON text, with `data` (already JSON) spliced in, not re-encoded."""
    return (f'{{"key":{jsonio.dumps(key)},"data":{data},"version":{version},'
            f'"updated_at":"{clock.to_rfc3339(updated_us)}"}}')


def api_error(err: storage.StorageError) -> errors.APIError:
    """The API error a storage error answers as."""
    for kind, api_kind in _FROM_STORAGE:
        if isinstance(err, kind):
            return api_kind(retry_after=err.retry_after)
    return errors.APIError()


def error_response(err: errors.APIError) -> Response:
    """The response for an APIError; its code is left for the request's log line."""
    request.environ[errors.ERROR_CODE] = err.code
    return json_response(err.body(), err.status, err.headers)


def init_app(app: Flask) -> None:
    """Register the handlers that give every error the JSON shape."""

    @app.errorhandler(errors.APIError)
    def handle_api_error(err: errors.APIError) -> Response:
        return error_response(err)

    @app.errorhandler(storage.StorageError)
    def handle_storage_error(err: storage.StorageError) -> Response:
        return error_response(api_error(err))

    @app.errorhandler(HTTPException)
    def handle_http_error(err: HTTPException) -> Response:
        kind = _HTTP.get(err.code or 500)
        api_err: errors.APIError
        if kind is errors.MethodNotAllowed:
            allowed = ", ".join(sorted(getattr(err, "valid_methods", None) or ()))
            api_err = errors.MethodNotAllowed(f"This method is not allowed here; allowed: {allowed}.",
                                              headers={"Allow": allowed})
        elif kind:
            api_err = kind()
        else:
            api_err = errors.APIError(err.description)
            api_err.status, api_err.code = err.code or 500, "http_error"
        return error_response(api_err)

    @app.errorhandler(Exception)
    def handle_unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path,
                      extra={"fields": {"request_id": request.environ.get("spillway.request_id")}})
        return error_response(errors.APIError())
