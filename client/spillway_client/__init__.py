"""spillway_client: the Python client of Spillway's HTTP API.

    from spillway_client import Spillway

    with Spillway("http://127.0.0.1:8000", key) as api:
        receipts = api.put_items([("tt0000042", {"title": "Heat"})])
        api.wait_persisted(receipts)

Batch writes are cut into chunks the server takes (1000 records, 1 MiB), each
sent with an Idempotency-Key its retries reuse; 429, 502, 503, 504 and lost
connections are retried (honouring Retry-After, with jitter) until a deadline;
every failure is a SpillwayError subclass carrying the server's JSON error.
"""
from spillway_client.client import Receipt, Spillway, __version__
from spillway_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    DeadlineExceeded,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRecord,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    SpillwayError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
    WriteDead,
)

__all__ = [
    "BadRequest", "Conflict", "ConnectionFailed", "DeadlineExceeded", "Forbidden", "IdempotencyKeyReused",
    "InvalidRecord", "NotFound",
    "PayloadTooLarge", "RateLimited", "Receipt", "ServerError", "Spillway", "SpillwayError", "Unauthorized",
    "Unavailable", "ValidationError", "WaitTimeout", "WriteDead", "__version__",
]
