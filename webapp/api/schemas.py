"""Request schemas (pydantic): bodies are strict, query strings are parsed from text.

A failed validation raises ValidationFailed with one detail per problem, each
with a path such as `items[3].key`. `data` validators return the compact JSON
text of the object, so each payload is encoded exactly once, here.
"""
import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from webapp import clock, jsonio
from webapp.errors import ValidationFailed

MAX_BATCH = 1000
MAX_ITEM_DATA = 64 * 1024
MAX_EVENT_DATA = 16 * 1024
MAX_DATA_DEPTH = 32  # MariaDB's JSON functions stop at 32 levels
# Unicode category Cc (C0, DEL, C1) as the body of a regex class; bodies.py and openapi.py use it too
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")


def _no_control_chars(value):
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (Unicode category Cc)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _depth(value, limit):
    """True if containers nest at most `limit` levels deep."""
    if limit < 0:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth(v, limit - 1) for v in value)
    return True


def _encoded(max_bytes):
    """Validator: a JSON object as compact JSON text, at most `max_bytes` of UTF-8.

    A plain validator, so pydantic does not copy the object first: it is checked
    and encoded once, here.
    """

    def encode(value):
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        try:
            raw = jsonio.encode(value)
        except jsonio.JSONError as err:
            raise ValueError(str(err)) from None
        size = len(raw)
        text = raw.decode("utf-8")
        if size > max_bytes:
            raise ValueError(f"is {size} bytes as compact JSON; the limit is {max_bytes}")
        # Depth is at most the number of containers: only walk the value when that could exceed the limit.
        if text.count("{") + text.count("[") > MAX_DATA_DEPTH and not _depth(value, MAX_DATA_DEPTH - 1):
            raise ValueError(f"must not nest deeper than {MAX_DATA_DEPTH} levels")
        return text

    return PlainValidator(encode, json_schema_input_type=dict[str, Any])


def _timestamp(value):
    return clock.parse_rfc3339(value)


Key = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_control_chars)]
ItemData = Annotated[Any, _encoded(MAX_ITEM_DATA)]
EventData = Annotated[Any, _encoded(MAX_EVENT_DATA)]
Level = Literal["debug", "info", "warning", "error", "critical"]
LEVELS: tuple[str, ...] = get_args(Level)
Timestamp = Annotated[str, AfterValidator(_timestamp)]  # becomes microseconds


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemIn(_Body):
    """One item of a batch upsert; `data` becomes its JSON text."""

    key: Key
    data: ItemData


class ItemsIn(_Body):
    """POST /api/v1/items."""

    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventIn(_Body):
    """One event; `occurred_at` becomes microseconds, `data` its JSON text."""

    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_no_control_chars)]
    level: Level = "info"
    occurred_at: Timestamp | None = None
    event_id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_control_chars)] | None = None
    data: EventData | None = None


class EventsIn(_Body):
    """POST /api/v1/events."""

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoQuery(_Query):
    """Endpoints that take no query parameters."""


class ItemListQuery(_Query):
    """GET /api/v1/items."""

    prefix: Annotated[str, Field(max_length=255)] = ""
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 100


class EventListQuery(_Query):
    """GET /api/v1/events."""

    name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    level: Level | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 100


Kind = Literal["items", "events"]
Ids = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=MAX_BATCH)]


class DeadLetterQuery(_Query):
    """GET and DELETE /api/v1/dead-letters: which dead letters (all filters must match)."""

    write_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    kind: Kind | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    ids: Annotated[str, Field(pattern=r"^[0-9]+(,[0-9]+)*$", max_length=20000)] | None = None
    all: bool = False  # DELETE: purge everything (no filter) on purpose
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 100


class DeadLetterFilter(_Body):
    """A filter in a redrive body (an empty one: every dead letter)."""

    kind: Kind | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class RedriveIn(_Body):
    """POST /api/v1/dead-letters/redrive: exactly one of write_id, ids, filter."""

    write_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    ids: Ids | None = None
    filter: DeadLetterFilter | None = None
    dry_run: bool = False


class UnreadableQuery(_Query):
    """GET and DELETE /api/v1/dead-letters/unreadable."""

    after: Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+$")] | None = None
    ids: Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+(,[0-9]+-[0-9]+)*$", max_length=20000)] | None = None
    all: bool = False
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 100


def _path(loc):
    """('items', 3, 'key') -> 'items[3].key'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def _message(error):
    if error["type"] == "extra_forbidden":
        return "is not a known field"
    if error["type"] == "missing":
        return "is required"
    msg = error["msg"]
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def parse(model, value):
    """Validate `value` against `model`; raise ValidationFailed listing every problem."""
    try:
        return model.model_validate(value)
    except ValidationError as err:
        details = [{"path": _path(e["loc"]), "message": _message(e)} for e in err.errors(include_url=False)]
        raise ValidationFailed(details=details[:50]) from None


def parse_query(model, args):
    """Validate a query string (a MultiDict); a parameter given twice is an error."""
    repeated = [k for k, values in args.lists() if len(values) > 1]
    if repeated:
        raise ValidationFailed(details=[{"path": k, "message": "is given more than once"} for k in repeated])
    return parse(model, args.to_dict())


def is_key(key: str) -> bool:
    """True for a key the API accepts: 1 to 255 characters, no control characters."""
    return 1 <= len(key) <= 255 and not _CONTROL.search(key)


def key_or_error(key):
    """Check an item key taken from a URL path; raise ValidationFailed if it is not valid."""
    if not 1 <= len(key) <= 255:
        raise ValidationFailed(details=[{"path": "key", "message": "must be 1 to 255 characters"}])
    if _CONTROL.search(key):
        raise ValidationFailed(details=[{"path": "key",
                                         "message": "must not contain control characters (Unicode category Cc)"}])
    return key


def encode_cursor(position):
    """An opaque cursor for a list position (a JSON-able value)."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor, check):
    """The position inside a cursor, validated by `check`; 422 if it is not one we issued."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        if check(position):
            return position
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        pass
    raise ValidationFailed(details=[{"path": "cursor",
                                     "message": "is not a cursor this API issued; pass back `next` unchanged"}])
