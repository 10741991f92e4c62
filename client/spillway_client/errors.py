"""Typed errors: one class per kind of failure, each carrying the server's JSON error.

Every error the client raises is a SpillwayError. One that comes from an HTTP
answer has the answer's `status` and its `{"error": {"code", "message",
"details"}}`; one without an answer (the connection failed) has status None.
Every error of a request carries its `request_id`: the X-Request-ID the client
sent (the server logs it with the request) or the one the answer came back with.
"""
from typing import Any

from spillway_client.models import WriteStatus


class SpillwayError(Exception):
    """Root of every error the client raises.

    status: the HTTP status (None when no answer came); code, message, details:
    the server's JSON error; retry_after: its Retry-After in seconds, if any;
    receipts: receipts of the chunks of a batch write that were accepted before
    this error stopped it (the rest of the batch was not sent); request_id: the
    X-Request-ID of the request that failed (None for an error no request made).
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "", details: Any = None,
                 retry_after: float | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.request_id = request_id
        self.receipts: list[Any] = []

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        text = f"{where}{self.code}: {self.message}" if self.code else f"{where}{self.message}"
        return f"{text} (request {self.request_id})" if self.request_id else text


class BadRequest(SpillwayError):
    """400: the body could not be read as JSON (`invalid_json`)."""


class Unauthorized(SpillwayError):
    """401: no valid bearer key."""


class Forbidden(SpillwayError):
    """403: the key may not do this."""


class NotFound(SpillwayError):
    """404: no such item, write or route."""


class Conflict(SpillwayError):
    """409, and the parent of IdempotencyKeyReused (which servers before the 422 answered with 409)."""


class PayloadTooLarge(SpillwayError):
    """413: the body is over the server's MAX_BODY_BYTES."""


class ValidationError(SpillwayError):
    """422: the request's shape, types or sizes; `details` lists each problem with its path."""


class IdempotencyKeyReused(Conflict, ValidationError):
    """422 `idempotency_key_reused`: the Idempotency-Key went with another body before; nothing was queued.

    Both a Conflict (what older servers answered: 409 `idempotency_conflict`,
    mapped here too) and a ValidationError (its status now), so either except
    clause catches it.
    """


class RateLimited(SpillwayError):
    """429: past WRITE_RATE_LIMIT for this key. Retried until the deadline."""


class ServerError(SpillwayError):
    """5xx: the server failed. Only 502, 503 and 504 are retried."""


class Unavailable(ServerError):
    """503: the server cannot take the request now (backpressure, Redis or MySQL away). Retried."""


class ConnectionFailed(SpillwayError):
    """No HTTP answer: the connection was refused, reset or closed mid-request, or timed out. Retried."""


class InvalidRecord(SpillwayError, ValueError):
    """A record the client cannot send: not a dict or (key, data) pair, or not JSON (NaN, a set, ...)."""


class DeadlineExceeded(SpillwayError):
    """A call's retries ran out of time; `last_error` is the failure of the last attempt.

    status, code, details and request_id are the last error's; `attempts` is how many were made.
    """

    def __init__(self, message: str, last_error: SpillwayError | None = None, attempts: int = 0) -> None:
        super().__init__(message, status=last_error.status if last_error else None,
                         code=last_error.code if last_error else "deadline_exceeded",
                         details=last_error.details if last_error else None,
                         request_id=last_error.request_id if last_error else None)
        self.last_error = last_error
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class WaitTimeout(DeadlineExceeded):
    """wait_persisted: some writes were still queued when its timeout ran out; `pending` lists their ids."""

    def __init__(self, message: str, pending: list[str]) -> None:
        super().__init__(message)
        self.code = "wait_timeout"
        self.pending = pending


class WriteDead(SpillwayError):
    """wait_persisted: MySQL rejected records of a write; `receipt` is its WriteStatus (see the dead_letters table)."""

    def __init__(self, message: str, receipt: WriteStatus, request_id: str | None = None) -> None:
        super().__init__(message, code="dead", request_id=request_id)
        self.receipt = receipt


# HTTP status -> error class; any other 4xx is a SpillwayError, any other 5xx a ServerError.
# An error code in BY_CODE wins over the status.
BY_STATUS: dict[int, type[SpillwayError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    422: ValidationError, 429: RateLimited, 503: Unavailable,
}
BY_CODE: dict[str, type[SpillwayError]] = {
    "idempotency_key_reused": IdempotencyKeyReused, "idempotency_conflict": IdempotencyKeyReused,
}


def error_for(status: int, body: Any, retry_after: float | None = None, text: str = "",
              request_id: str | None = None) -> SpillwayError:
    """The error an HTTP answer stands for, from its status and (JSON) body."""
    kind = BY_STATUS.get(status) or (ServerError if status >= 500 else SpillwayError)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or "")
        details = error.get("details")
        kind = BY_CODE.get(code, kind)
    else:  # not Spillway's JSON shape: a proxy's page, say
        code, message, details = f"http_{status}", " ".join(text.split())[:200], None
    return kind(message or f"HTTP {status}", status=status, code=code, details=details, retry_after=retry_after,
                request_id=request_id)
