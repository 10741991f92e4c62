"""Batch writes cut into requests the server takes: at most 1000 records and MAX_BODY_BYTES each.

Records are encoded once, as compact UTF-8 JSON, and each chunk's body is
built from them; the body of a chunk never changes, so every retry of it sends
the same bytes under the same Idempotency-Key. Chunks are made lazily, so a
generator of millions of records is sent without holding them all.
"""
import datetime
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

MAX_RECORDS = 1000  # the server's batch limit
MAX_BODY_BYTES = 1024 * 1024  # the server's MAX_BODY_BYTES default


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as compact UTF-8 JSON (NaN, Infinity and lone surrogates refused, as the server does)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=_default).encode("utf-8")


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def rfc3339(value: datetime.datetime | str) -> str:
    """A time as the API takes it: an aware datetime as RFC 3339; text passes as it is."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous: give it a timezone (datetime.timezone.utc)")
    return value.isoformat()


def item_record(item: Any) -> Mapping[str, Any]:
    """{"key", "data"} from a mapping (sent as it is) or a (key, data) pair."""
    if isinstance(item, Mapping):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"key": item[0], "data": item[1]}
    raise TypeError(f"an item is a {{'key', 'data'}} dict or a (key, data) pair, not {type(item).__name__}")


def event_record(event: Any) -> Mapping[str, Any]:
    """An event is a mapping: {"name", "level"?, "occurred_at"?, "event_id"?, "data"?}."""
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a dict, not {type(event).__name__}")
    return event


def chunks(records: Iterable[Mapping[str, Any]], field: str, max_records: int = MAX_RECORDS,
           max_body_bytes: int = MAX_BODY_BYTES) -> Iterator[tuple[bytes, int]]:
    """(body, record count) per request: `{"<field>": [...]}` with at most max_records records
    and at most max_body_bytes bytes. A record too large to fit any body goes alone (the
    server then answers 413 or 422)."""
    head = b'{"' + field.encode() + b'":['
    tail = b"]}"
    empty = len(head) + len(tail)
    parts: list[bytes] = []
    size = empty
    for record in records:
        part = encode(record)
        grown = size + len(part) + (1 if parts else 0)
        if parts and (len(parts) >= max_records or grown > max_body_bytes):
            yield head + b",".join(parts) + tail, len(parts)
            parts, grown = [], empty + len(part)
        parts.append(part)
        size = grown
    if parts:
        yield head + b",".join(parts) + tail, len(parts)
