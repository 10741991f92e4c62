"""The APIError family and the one JSON error shape every error response uses.

Views and services raise typed errors; init_app registers the handlers that turn
them, Werkzeug's HTTP errors and anything unexpected into
{"error": {"code", "message", "details"?}}. A 500 is logged with its traceback
and never shows it.
"""
import logging

from werkzeug.exceptions import HTTPException

from webapp import jsonio

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error with an HTTP status, a snake_case code and a sentence for people."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side; the error was logged."

    def __init__(self, message=None, details=None, retry_after=None, headers=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, int(round(retry_after))))
        elif self.status == 503:
            self.headers.setdefault("Retry-After", "1")

    def body(self):
        """The JSON-ready error document."""
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(APIError):
    status, code, message = 400, "bad_request", "The request could not be understood."


class InvalidJSON(APIError):
    status, code, message = 400, "invalid_json", "The body is not valid UTF-8 JSON."


class Unauthorized(APIError):
    status, code = 401, "unauthorized"
    message = "Send a valid API key as 'Authorization: Bearer <key>'."

    def __init__(self, message=None):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="spillway"'})


class NotFound(APIError):
    status, code, message = 404, "not_found", "Nothing exists at this address."


class MethodNotAllowed(APIError):
    status, code, message = 405, "method_not_allowed", "This method is not allowed here."


class Conflict(APIError):
    status, code = 409, "idempotency_conflict"
    message = "This Idempotency-Key was already used with a different request body."


class PayloadTooLarge(APIError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class UnsupportedMediaType(APIError):
    status, code = 415, "unsupported_media_type"
    message = "Send the body as 'Content-Type: application/json'."


class ValidationFailed(APIError):
    status, code, message = 422, "validation_error", "The request is not valid; see details."


class RateLimited(APIError):
    status, code, message = 429, "rate_limited", "Too many writes for this API key; retry after the delay given."


class ServiceUnavailable(APIError):
    """Base of every 503: each carries Retry-After."""

    status, code, message = 503, "service_unavailable", "The service is unavailable; retry shortly."


class PoolTimeout(ServiceUnavailable):
    code, message = "pool_timeout", "All database connections are busy; retry shortly."


class DatabaseUnavailable(ServiceUnavailable):
    code, message = "database_unavailable", "The database is not answering; retry shortly."


class QueueUnavailable(ServiceUnavailable):
    code, message = "queue_unavailable", "The write queue is not answering; nothing was accepted, retry shortly."


class CacheUnavailable(ServiceUnavailable):
    code, message = "cache_unavailable", "The cache is not answering; retry shortly."


class Backpressure(ServiceUnavailable):
    code, message = "backpressure", "The write queue is full; nothing was accepted, retry after the delay given."


_HTTP = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge, 415: UnsupportedMediaType}


ERROR_CODE = "spillway.error"  # the error code, for the request's log line (webapp/observe.py)


def error_response(err):
    """Build the Flask response for an APIError."""
    from flask import request

    request.environ[ERROR_CODE] = err.code
    return jsonio.response(err.body(), err.status, err.headers)


def init_app(app):
    """Register the handlers that give every error the JSON shape."""

    @app.errorhandler(APIError)
    def handle_api_error(err):
        return error_response(err)

    @app.errorhandler(HTTPException)
    def handle_http_error(err):
        kind = _HTTP.get(err.code)
        if kind is MethodNotAllowed:
            allowed = ", ".join(sorted(err.valid_methods or ()))
            api_err = MethodNotAllowed(
                f"This method is not allowed here; allowed: {allowed}.",
                headers={"Allow": allowed},
            )
        elif kind:
            api_err = kind()
        else:
            api_err = APIError(err.description)
            api_err.status, api_err.code = err.code or 500, "http_error"
        return error_response(api_err)

    @app.errorhandler(Exception)
    def handle_unexpected(err):
        from flask import request

        log.exception("unhandled error on %s %s", request.method, request.path,
                      extra={"fields": {"request_id": request.environ.get("spillway.request_id")}})
        return error_response(APIError())
