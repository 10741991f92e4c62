"""Events: append-only log records (batch POST, filtered keyset list)."""
from flask import Blueprint, request

from webapp import clock, jsonio
from webapp.api import accepted, idempotency, json_body, services
from webapp.auth import require_key, require_read_key
from webapp.sql import events as events_sql
from webapp.validation import EventListQuery, EventsIn, decode_cursor, encode_cursor, parse, parse_query

bp = Blueprint("events", __name__, url_prefix="/api/v1/events")


@bp.post("")
def post_events():
    """Queue a batch of events; 202 with a receipt once Redis holds it."""
    key_id = require_key()
    raw, body = json_body()
    batch = parse(EventsIn, body)
    records = [[e.name, e.level, e.occurred_at, e.event_id, e.data] for e in batch.events]
    return accepted(services().queue.append("events", records, key_id, **idempotency(raw)))


def _event_json(seq, event_id, name, level, occurred_us, received_us, data):
    return (f'{{"seq":{seq},"event_id":{jsonio.dumps(event_id)},"name":{jsonio.dumps(name)},'
            f'"level":"{level}","occurred_at":"{clock.to_rfc3339(occurred_us)}",'
            f'"received_at":"{clock.to_rfc3339(received_us)}","data":{data if data is not None else "null"}}}')


def _is_event_cursor(position):
    return (isinstance(position, dict) and set(position) == {"t", "s"}
            and all(isinstance(position[k], int) and position[k] >= 0 for k in ("t", "s")))


@bp.get("")
def list_events():
    """Persisted events, newest first (occurred_at, then arrival), keyset-paginated."""
    require_read_key()
    q = parse_query(EventListQuery, request.args)
    before = None
    if q.cursor:
        position = decode_cursor(q.cursor, _is_event_cursor)
        before = (position["t"], position["s"])
    rows = services().read(lambda con: events_sql.page(con, q.name, q.level, q.since, q.until, before, q.limit + 1))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = encode_cursor({"t": rows[-1][4], "s": rows[-1][0]}) if more else None
    body = '{"events":[' + ",".join(_event_json(*row) for row in rows) + '],"next":' + jsonio.dumps(next_cursor) + "}"
    return jsonio.response(body)
