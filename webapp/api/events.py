"""Events: append-only log records (batch POST, filtered keyset list)."""
from flask import Blueprint, Response, request

from webapp import clock
from webapp.api.auth import require_read_key
from webapp.api.request import storage, write
from webapp.api.responses import json_response
from webapp.http.decode import query, timestamp
from webapp.http.paths import decode_cursor, encode_cursor
from webapp.http.render import event_json, within_bytes
from webapp.http.schemas import EventListQuery
from webapp.jsonio import dumps
from webapp.storage.sql import events as events_sql

bp = Blueprint("events", __name__, url_prefix="/api/v1/events")


@bp.post("")
def post_events() -> Response:
    """Queue a batch of events; 202 with a receipt once Redis holds it (webapp/http/writes.py)."""
    return write()


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
    q = query(EventListQuery, request.args.lists())
    since, until = timestamp(q.since, "since"), timestamp(q.until, "until")
    before = None
    if q.cursor:
        position = decode_cursor(q.cursor, _is_event_cursor)
        before = (position["t"], position["s"])
    s = storage().settings
    rows = storage().reads.run(
        lambda con: events_sql.page(con, q.name, q.level, since, until, before, q.limit + 1, s.db_list_timeout),
        timeout=s.db_list_timeout)
    parts, more = within_bytes([event_json(*row) for row in rows[: q.limit]], s.list_max_bytes)
    more = more or len(rows) > q.limit
    last = rows[len(parts) - 1] if parts else None
    next_cursor = encode_cursor({"t": last[4], "s": last[0]}) if more and last else None
    body = '{"events":[' + ",".join(parts) + '],"next":' + dumps(next_cursor) + "}"
    return json_response(body)
