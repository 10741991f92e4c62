"""What goes out through Flask: JSON responses and the one error shape.

init_app registers the handlers that turn API errors, storage errors,
Werkzeug's HTTP errors and anything unexpected into
{"error": {"code", "message", "details"?}}. A 500 is logged with its
traceback and never shows it.
"""
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from webapp import jsonio
from webapp.http import errors
from webapp.http.environ import REQUEST_ID
from webapp.storage import errors as storage

log = logging.getLogger(__name__)

_HTTP: dict[int, type[errors.APIError]] = {404: errors.NotFound, 405: errors.MethodNotAllowed,
                                           413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; `body` is a value or already-encoded JSON text/bytes."""
    if not isinstance(body, (str, bytes)):
        body = jsonio.encode(body)
    return Response(body, status=status, headers=headers, content_type="application/json")


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
        return error_response(errors.from_storage(err))

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
                      extra={"fields": {"request_id": request.environ.get(REQUEST_ID)}})
        return error_response(errors.APIError())
