"""spillway_client: the Python client of Spillway's HTTP API, blocking (Client) or for asyncio (AsyncClient).

    from spillway_client import Client

    with Client("http://127.0.0.1:8000", key) as api:   # or Client(): SPILLWAY_URL, SPILLWAY_API_KEY
        receipts = api.put_items([("tt0000042", {"title": "Heat"})])
        api.wait_persisted(receipts)

Batch writes are cut into chunks the server takes (1000 records, 1 MiB), each
sent with an Idempotency-Key its retries reuse; 429, 502, 503, 504 and lost
connections are retried (honouring Retry-After, with jitter) until a deadline,
each retry logged as a warning on the "spillway_client" logger. Answers are
typed (Receipt, Item, Event, WriteStatus); every failure is a SpillwayError
subclass carrying the server's JSON error and the request's X-Request-ID.
"""
from spillway_client.aio import AsyncClient
from spillway_client.client import Client, Spillway, __version__
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
from spillway_client.models import Event, Item, Receipt, WriteStatus

__all__ = [
    "AsyncClient", "BadRequest", "Client", "Conflict", "ConnectionFailed", "DeadlineExceeded", "Event", "Forbidden",
    "IdempotencyKeyReused", "InvalidRecord", "Item", "NotFound", "PayloadTooLarge", "RateLimited", "Receipt",
    "ServerError", "Spillway", "SpillwayError", "Unauthorized", "Unavailable", "ValidationError", "WaitTimeout",
    "WriteDead", "WriteStatus", "__version__",
]
