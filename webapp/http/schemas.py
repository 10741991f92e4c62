"""The one schema of every request: msgspec Structs, from which validation and the OpenAPI document come.

Bodies and query strings are declared here once, with every limit
(webapp/http/limits.py). webapp/http/decode.py decodes and checks requests
against them; webapp/api/openapi.py documents the same Structs. A record's
`data` is a msgspec.Raw: kept as the JSON text it arrived as, never decoded
into Python objects and encoded again.
"""
import re
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from webapp.http import limits

NO_CONTROL = f"^[^{limits.CONTROL_CHARS}]+$"  # for the OpenAPI document; checks use CONTROL
CONTROL = re.compile(f"[{limits.CONTROL_CHARS}]")
CONTROL_MESSAGE = "must not contain control characters (Unicode category Cc)"


def _text(most: int, description: str) -> Any:
    return Meta(min_length=1, max_length=most, description=description, extra_json_schema={"pattern": NO_CONTROL})


Key = Annotated[str, _text(limits.MAX_KEY_CHARS, "Compared byte for byte; percent-encoded in paths ('/' as %2F). "
                                                 "No control characters.")]
Name = Annotated[str, _text(limits.MAX_NAME_CHARS, "The event's name; no control characters")]
EventId = Annotated[str, _text(limits.MAX_EVENT_ID_CHARS, "An idempotency key: the first event stored with it wins")]
Level = Literal["debug", "info", "warning", "error", "critical"]
Timestamp = Annotated[str, Meta(description="RFC 3339", extra_json_schema={"format": "date-time"})]
ItemData = Annotated[Raw, Meta(extra_json_schema={
    "type": "object", "description": f"At most {limits.MAX_ITEM_DATA_BYTES} bytes as compact JSON, "
                                     f"nested at most {limits.MAX_DATA_DEPTH} levels"})]
EventData = Annotated[Raw, Meta(extra_json_schema={
    "type": ["object", "null"], "description": f"At most {limits.MAX_EVENT_DATA_BYTES} bytes as compact JSON, "
                                               f"nested at most {limits.MAX_DATA_DEPTH} levels"})]
PageSize = Annotated[int, Meta(ge=1, le=limits.MAX_PAGE, description="Page size")]
Cursor = Annotated[str, Meta(description="The `next` of the previous page, unchanged (opaque)",
                             extra_json_schema={"pattern": "^[A-Za-z0-9_-]*$"})]
WriteId = Annotated[str, Meta(min_length=1, max_length=limits.MAX_WRITE_ID_CHARS, pattern="^[A-Za-z0-9_-]+$",
                              description="The write the records belonged to")]
Reason = Annotated[str, Meta(min_length=1, max_length=limits.MAX_REASON_CHARS, description="Text the reason contains")]
Kind = Literal["items", "events"]


class _Body(Struct, forbid_unknown_fields=True):
    """A request body: unknown fields are errors."""


# --- write bodies ---------------------------------------------------------------------------


class ItemIn(_Body):
    """One item of a batch upsert."""

    key: Key
    data: ItemData


class ItemsIn(_Body):
    """POST /api/v1/items: a batch upsert, all or nothing."""

    items: Annotated[list[ItemIn], Meta(min_length=1, max_length=limits.MAX_BATCH)]


class EventIn(_Body):
    """One event."""

    name: Name
    level: Level = "info"
    occurred_at: Timestamp | None = None
    event_id: EventId | None = None
    data: EventData | UnsetType = UNSET


class EventsIn(_Body):
    """POST /api/v1/events: a batch of events, all or nothing."""

    events: Annotated[list[EventIn], Meta(min_length=1, max_length=limits.MAX_BATCH)]


# --- reads ------------------------------------------------------------------------------------


class ItemKeysIn(_Body):
    """POST /api/v1/items:get: the keys of a multi-get."""

    keys: Annotated[list[Key], Meta(min_length=1, max_length=limits.MAX_MULTI_GET,
                                    description="Item keys, as GET /api/v1/items/<key> takes them (not "
                                                "percent-encoded); a key given twice is answered once")]


# --- dead letters (admin) -------------------------------------------------------------------


class DeadLetterFilter(_Body):
    """A filter in a redrive body (an empty one: every dead letter)."""

    kind: Kind | None = None
    reason: Reason | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class RedriveIn(_Body):
    """POST /api/v1/dead-letters/redrive: exactly one of write_id, ids, filter."""

    write_id: WriteId | None = None
    ids: Annotated[list[Annotated[int, Meta(ge=1, le=2**63 - 1)]],
                   Meta(min_length=1, max_length=limits.MAX_BATCH)] | None = None
    filter: DeadLetterFilter | None = None
    dry_run: bool = False


# --- query strings ----------------------------------------------------------------------------


class NoQuery(_Body):
    """Endpoints that take no query parameters."""


class ItemListQuery(_Body):
    """GET /api/v1/items."""

    prefix: Annotated[str, Meta(max_length=limits.MAX_KEY_CHARS, description="Literal, case-sensitive")] = ""
    cursor: Cursor | None = None
    limit: PageSize = limits.DEFAULT_PAGE


class EventListQuery(_Body):
    """GET /api/v1/events."""

    name: Annotated[str, Meta(min_length=1, max_length=limits.MAX_NAME_CHARS, description="Exact name")] | None = None
    level: Level | None = None
    since: Annotated[Timestamp, Meta(description="Inclusive, on occurred_at")] | None = None
    until: Annotated[Timestamp, Meta(description="Exclusive, on occurred_at")] | None = None
    cursor: Cursor | None = None
    limit: PageSize = limits.DEFAULT_PAGE


class DeadLetterQuery(_Body):
    """GET and DELETE /api/v1/dead-letters: which dead letters (all filters must match)."""

    write_id: WriteId | None = None
    kind: Kind | None = None
    reason: Reason | None = None
    since: Annotated[Timestamp, Meta(description="Failed at or after")] | None = None
    until: Annotated[Timestamp, Meta(description="Failed before")] | None = None
    ids: Annotated[str, Meta(pattern=r"^[0-9]{1,19}(,[0-9]{1,19})*$", max_length=limits.MAX_IDS_TEXT,
                             description="Dead letter ids, comma-separated")] | None = None
    all: Annotated[bool, Meta(description="DELETE: with no filter, purge everything")] = False
    cursor: Cursor | None = None
    limit: PageSize = limits.DEFAULT_PAGE


class UnreadableQuery(_Body):
    """GET and DELETE /api/v1/dead-letters/unreadable."""

    after: Annotated[str, Meta(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$",
                               description="Page after this entry id")] | None = None
    ids: Annotated[str, Meta(pattern=r"^[0-9]{1,20}-[0-9]{1,20}(,[0-9]{1,20}-[0-9]{1,20})*$",
                             max_length=limits.MAX_IDS_TEXT,
                             description="Unreadable entry ids, comma-separated")] | None = None
    all: Annotated[bool, Meta(description="DELETE: purge everything")] = False
    limit: PageSize = limits.DEFAULT_PAGE
