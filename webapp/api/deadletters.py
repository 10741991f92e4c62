"""Dead letters over HTTP, for keys with the `admin` scope: list, show, redrive, purge.

A redrive runs as the Celery task spillway.redrive (Flower shows it); the 202
says how many dead letters it matched. Unreadable queue entries are listed and
purged under /api/v1/dead-letters/unreadable.
"""
from typing import Any

from flask import Blueprint, Response, request

from webapp.api import jobs
from webapp.api.auth import require_key
from webapp.api.request import json_body, storage
from webapp.api.responses import json_response
from webapp.http.decode import decode, query, timestamp
from webapp.http.errors import NotFound, ValidationFailed
from webapp.http.limits import MAX_BATCH
from webapp.http.paths import decode_cursor, encode_cursor
from webapp.http.schemas import DeadLetterQuery, RedriveIn, UnreadableQuery
from webapp.storage.sql.deadletters import Filter

bp = Blueprint("dead_letters", __name__, url_prefix="/api/v1/dead-letters")


def _filter(q: DeadLetterQuery) -> Filter:
    ids = tuple(int(i) for i in q.ids.split(",")) if q.ids else ()
    if len(ids) > MAX_BATCH or any(i >= 2**63 for i in ids):  # found by the fuzzer: MySQL answered 500 past BIGINT
        raise ValidationFailed(details=[{"path": "ids", "message": f"at most {MAX_BATCH} ids, each below 2^63"}])
    return Filter(ids, q.write_id, q.kind, q.reason, timestamp(q.since, "since"), timestamp(q.until, "until"))


def _is_id_cursor(position: object) -> bool:
    return isinstance(position, dict) and set(position) == {"id"} and type(position["id"]) is int \
        and 0 <= position["id"] < 2**63


@bp.get("")
def list_dead_letters() -> Response:
    """Dead letters matching the filters, oldest first, keyset-paginated."""
    require_key("admin")
    q = query(DeadLetterQuery, request.args.lists())
    after = decode_cursor(q.cursor, _is_id_cursor)["id"] if q.cursor else None
    found = storage().dead_letters.find(_filter(q), after, q.limit + 1)
    more = len(found) > q.limit
    found = found[: q.limit]
    return json_response({"dead_letters": [d.as_dict() for d in found],
                          "next": encode_cursor({"id": found[-1].id}) if more else None})


@bp.get("/<int:dead_letter_id>")
def show_dead_letter(dead_letter_id: int) -> Response:
    """One dead letter, with its record and the reason MySQL gave."""
    require_key("admin")
    found = storage().dead_letters.get(dead_letter_id)
    if found is None:
        raise NotFound("No dead letter has this id.")
    return json_response(found.as_dict())


@bp.post("/redrive")
def redrive() -> Response:
    """Send dead letters back through the queue (by write id, by ids, or all matching a filter)."""
    require_key("admin")
    wanted = decode(RedriveIn, json_body())
    given = [name for name in ("write_id", "ids", "filter") if getattr(wanted, name) is not None]
    if len(given) != 1:
        raise ValidationFailed(details=[{"path": "(body)",
                                         "message": "give exactly one of write_id, ids or filter"}])
    selection: dict[str, Any] = {}
    if wanted.write_id is not None:
        selection["write_id"] = wanted.write_id
    elif wanted.ids is not None:
        selection["ids"] = list(wanted.ids)
    elif wanted.filter is not None:
        f = wanted.filter
        selection.update(kind=f.kind, reason=f.reason, since_us=timestamp(f.since, "filter.since"),
                         until_us=timestamp(f.until, "filter.until"))
    matched = storage().dead_letters.count(Filter.from_dict(selection))
    if wanted.dry_run or not matched:
        return json_response({"matched": matched, "dry_run": wanted.dry_run})
    task_id = jobs.start("spillway.redrive", selection)
    return json_response({"matched": matched, "dry_run": False, "task_id": task_id}, 202)


@bp.delete("")
def purge_dead_letters() -> Response:
    """Delete the dead letters matching the filters (all=true, and no filter: every one)."""
    require_key("admin")
    q = query(DeadLetterQuery, request.args.lists())
    selection = _filter(q)
    if selection.is_empty() and not q.all:
        raise ValidationFailed(details=[{"path": "all", "message": "give a filter, or all=true to purge everything"}])
    return json_response({"purged": storage().dead_letters.purge(selection)})


@bp.get("/unreadable")
def list_unreadable() -> Response:
    """Queue entries the drain could not read, with the reason."""
    require_key("admin")
    q = query(UnreadableQuery, request.args.lists())
    entries = storage().dead_letters.unreadable(q.after or "-", q.limit + 1)
    more = len(entries) > q.limit
    entries = entries[: q.limit]
    return json_response({"entries": entries, "next": entries[-1]["id"] if more else None})


@bp.delete("/unreadable")
def purge_unreadable() -> Response:
    """Delete unreadable entries (by ids, or all=true)."""
    require_key("admin")
    q = query(UnreadableQuery, request.args.lists())
    if not q.ids and not q.all:
        raise ValidationFailed(details=[{"path": "all", "message": "give ids, or all=true to purge everything"}])
    return json_response({"purged": storage().dead_letters.purge_unreadable(q.ids.split(",") if q.ids else None)})
