"""The API's error vocabulary: status, snake_case code, a sentence for people, Retry-After.

No Flask here: views and the layers below Flask raise these, and from_storage()
names a storage error in the API's terms; webapp/api/responses.py and
webapp/server/respond.py turn them into the one JSON error shape.
"""
from typing import Any

from webapp.http import ratelimit
from webapp.http.environ import ERROR_CODE
from webapp.storage import errors as storage

__all__ = ["ERROR_CODE"]  # re-exported: error answers leave their code here


class APIError(Exception):
    """An error with an HTTP status, a snake_case code and a sentence for people."""

    status = 500
    code = "internal_error"
    message = "Something went wrong on our side; the error was logged."

    def __init__(self, message: str | None = None, details: list[dict[str, str]] | None = None,
                 retry_after: float | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, round(retry_after)))
        elif self.status == 503:
            self.headers.setdefault("Retry-After", "1")

    def body(self) -> dict[str, Any]:
        """The JSON-ready error document."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
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

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="spillway"'})


class Forbidden(APIError):
    status, code, message = 403, "forbidden", "This API key may not do this."


class NotFound(APIError):
    status, code, message = 404, "not_found", "Nothing exists at this address."


class MethodNotAllowed(APIError):
    status, code, message = 405, "method_not_allowed", "This method is not allowed here."


class RequestTimeout(APIError):
    status, code = 408, "request_timeout"
    message = "The request body did not arrive within BODY_READ_TIMEOUT; nothing was queued."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Connection": "close"})


class IdempotencyKeyReused(APIError):
    """422: the Idempotency-Key went with another request body (draft-ietf-httpapi-idempotency-key-header).

    The draft keeps 409 for a request still being processed; a write here is
    accepted atomically (lua/accept.lua), so a concurrent retry is never "in
    progress": it gets the first one's receipt.
    """

    status, code = 422, "idempotency_key_reused"
    message = ("This Idempotency-Key was already used with a different request body; nothing was queued. "
               "Use a new key for a new request.")


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


class ReplicationTimeout(ServiceUnavailable):
    code = "replication_timeout"
    message = ("The write reached the primary but not enough replicas in time, so it may still land. "
               "Retrying with the same Idempotency-Key is safe: it returns the same receipt, never a second copy.")


class Backpressure(ServiceUnavailable):
    code, message = "backpressure", "The write queue is full; nothing was accepted, retry after the delay given."


class ReceiptExpired(NotFound):
    """404 for a receipt past RECEIPT_TTL: the id is real, its receipt is gone."""

    code, message = "receipt_expired", "This write's receipt is past RECEIPT_TTL and was deleted."


class ItemNotFound(NotFound):
    """404 for an item key."""

    message = "No item has this key."


# Storage errors as the API names them; the first matching class wins.
_FROM_STORAGE: tuple[tuple[type[storage.StorageError], type[APIError]], ...] = (
    (storage.PoolTimeout, PoolTimeout),
    (storage.DatabaseUnavailable, DatabaseUnavailable),
    (storage.QueueUnavailable, QueueUnavailable),
    (storage.RedisUnavailable, CacheUnavailable),
    (storage.ReplicationTimeout, ReplicationTimeout),
    (storage.IdempotencyKeyReused, IdempotencyKeyReused),
    (storage.RateLimited, RateLimited),
    (storage.Backpressure, Backpressure),
    (storage.Unavailable, ServiceUnavailable),
)


def from_storage(err: storage.StorageError) -> APIError:
    """The API error a storage error answers as (a 500 for one the API has no name for)."""
    for kind, api_kind in _FROM_STORAGE:
        if isinstance(err, kind):
            answer = api_kind(retry_after=err.retry_after)
            if isinstance(err, storage.RateLimited) and err.rate is not None:
                answer.headers.update(ratelimit.headers(err.rate))
            return answer
    return APIError()
