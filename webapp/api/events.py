"""Events: append-only log records (batch POST, filtered keyset list)."""
from flask import Blueprint, Response, request

from webapp import clock
from webapp.api.auth import require_key, require_read_key
from webapp.api.request import idempotency, json_body, storage
from webapp.api.responses import accepted, json_response
from webapp.api.schemas import EventListQuery, EventsIn, decode_cursor, encode_cursor, parse, parse_query
from webapp.jsonio import dumps
from webapp.storage.records import Event
from webapp.storage.sql import events as events_sql

bp = Blueprint("events", __name__, url_prefix="/api/v1/events")


@bp.post("")
def post_events() -> Response:
    """Queue a batch of events; 202 with a receipt once Redis holds it."""
    key_id = require_key()
    raw, body = json_body()
    batch = parse(EventsIn, body)
    records = [Event(e.name, e.level, e.occurred_at, e.event_id, e.data) for e in batch.events]
    return accepted(storage().queue.append(records, key_id, **idempotency(raw)))


def _event_json(seq: int, event_id: str | None, name: str, level: str, occurred_us: int, received_us: int,
                data: str | None) -> str:
    return (f'{{"seq":{seq},"event_id":{dumps(event_id)},"name":{dumps(name)},'
            f'"level":"{level}","occurred_at":"{clock.to_rfc3339(occurred_us)}",'
            f'"received_at":"{clock.to_rfc3339(received_us)}","data":{data if data is not None else "null"}}}')


def _is_event_cursor(position: object) -> bool:
    """{"t": an occurred_at in MySQL's DATETIME range (us), "s": a version}: anything else was not issued by us.

    A crafted cursor with a huge timestamp used to reach MySQL and answer 500.
    """
    return (isinstance(position, dict) and set(position) == {"t", "s"}
            and all(type(position[k]) is int for k in ("t", "s"))
            and 0 <= position["t"] < clock.MAX_US and 0 <= position["s"] < 2**64)


@bp.get("")
def list_events() -> Response:
    """Persisted events, newest first (occurred_at, then arrival), keyset-paginated."""
    require_read_key()
    q = parse_query(EventListQuery, request.args)
    before = None
    if q.cursor:
        position = decode_cursor(q.cursor, _is_event_cursor)
        before = (position["t"], position["s"])
    rows = storage().reads.run(
        lambda con: events_sql.page(con, q.name, q.level, q.since, q.until, before, q.limit + 1))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = encode_cursor({"t": rows[-1][4], "s": rows[-1][0]}) if more else None
    body = '{"events":[' + ",".join(_event_json(*row) for row in rows) + '],"next":' + dumps(next_cursor) + "}"
    return json_response(body)
