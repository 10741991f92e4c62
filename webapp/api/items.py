"""Items: records looked up by an exact key (GET one, list, batch upsert, delete)."""
from flask import Blueprint, request

from webapp import clock, jsonio
from webapp.api import accepted, idempotency, json_body, services
from webapp.auth import require_key, require_read_key
from webapp.errors import NotFound
from webapp.sql import items as items_sql
from webapp.validation import (ItemListQuery, ItemsIn, NoQuery, decode_cursor, encode_cursor, key_from_path, parse,
                               parse_query)

bp = Blueprint("items", __name__, url_prefix="/api/v1/items")
PATH_PREFIX = "/api/v1/items/"
PEEKED = "spillway.peeked"  # set by webapp/fastpath.py: Redis was already asked, and missed


class ItemNotFound(NotFound):
    """404 for an item key."""

    message = "No item has this key."


def item_json(key, data, version, updated_us):
    """One item as JSON text, with `data` (already JSON) spliced in, not re-encoded."""
    return (f'{{"key":{jsonio.dumps(key)},"data":{data},"version":{version},'
            f'"updated_at":"{clock.to_rfc3339(updated_us)}"}}')


def path_key():
    """The item key from the raw request path (see validation.key_from_path)."""
    return key_from_path(request.environ.get("PATH_INFO", ""), PATH_PREFIX)


@bp.get("/<anytext:_key>")
def get_item(_key):
    """One item: from Redis, or on a miss from MySQL (then cached)."""
    require_read_key()
    key = path_key()
    if request.args:
        parse_query(NoQuery, request.args)
    entry = services().cache.get(key, peeked=request.environ.get(PEEKED, False))
    if entry.data is None:
        raise ItemNotFound()
    return jsonio.response(item_json(key, entry.data, entry.version, entry.updated_us))


def _is_key_cursor(position):
    return isinstance(position, dict) and isinstance(position.get("k"), str) and len(position) == 1


@bp.get("")
def list_items():
    """Persisted items in key order, keyset-paginated."""
    require_read_key()
    query = parse_query(ItemListQuery, request.args)
    after = decode_cursor(query.cursor, _is_key_cursor)["k"] if query.cursor else None
    rows = services().read(lambda con: items_sql.page(con, query.prefix, after, query.limit + 1))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor({"k": rows[-1][0]}) if more else None
    body = '{"items":[' + ",".join(item_json(*row) for row in rows) + '],"next":' + jsonio.dumps(next_cursor) + "}"
    return jsonio.response(body)


@bp.post("")
def post_items():
    """Queue a batch upsert; 202 with a receipt once Redis holds it."""
    key_id = require_key()
    raw, body = json_body()
    batch = parse(ItemsIn, body)
    records = [[item.key, item.data] for item in batch.items]
    receipt = services().queue.append("items", records, key_id, **idempotency(raw))
    return accepted(receipt)


@bp.delete("/<anytext:_key>")
def delete_item(_key):
    """Queue a delete (a versioned tombstone); deleting a missing key is accepted too."""
    key_id = require_key()
    key = path_key()
    receipt = services().queue.append("items", [[key, None]], key_id, **idempotency(b""))
    return accepted(receipt)
