"""Items: records looked up by an exact key (GET one, list, batch upsert, delete)."""
from flask import Blueprint, Response, request

from webapp.api.auth import require_key, require_read_key
from webapp.api.request import PEEKED, idempotency, json_body, path_key, storage
from webapp.api.responses import accepted, item_json, json_response
from webapp.api.schemas import ItemListQuery, ItemsIn, NoQuery, decode_cursor, encode_cursor, is_key, parse, parse_query
from webapp.errors import ItemNotFound
from webapp.jsonio import dumps
from webapp.storage.records import Item
from webapp.storage.sql import items as items_sql

bp = Blueprint("items", __name__, url_prefix="/api/v1/items")


@bp.get("/<anytext:_key>")
def get_item(_key: str) -> Response:
    """One item: from Redis, or on a miss from MySQL (then cached)."""
    require_read_key()
    key = path_key()
    if request.args:
        parse_query(NoQuery, request.args)
    entry = storage().cache.get(key, peeked=request.environ.get(PEEKED, False))
    if entry.data is None:
        raise ItemNotFound()
    return json_response(item_json(key, entry.data, entry.version, entry.updated_us))


def _is_key_cursor(position: object) -> bool:
    """{"k": a key as the API accepts keys}: anything else was not issued by us."""
    return (isinstance(position, dict) and len(position) == 1 and isinstance(position.get("k"), str)
            and is_key(position["k"]))


@bp.get("")
def list_items() -> Response:
    """Persisted items in key order, keyset-paginated."""
    require_read_key()
    query = parse_query(ItemListQuery, request.args)
    after = decode_cursor(query.cursor, _is_key_cursor)["k"] if query.cursor else None
    rows = storage().reads.run(lambda con: items_sql.page(con, query.prefix, after, query.limit + 1))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor({"k": rows[-1][0]}) if more else None
    body = '{"items":[' + ",".join(item_json(*row) for row in rows) + '],"next":' + dumps(next_cursor) + "}"
    return json_response(body)


@bp.post("")
def post_items() -> Response:
    """Queue a batch upsert; 202 with a receipt once Redis holds it."""
    key_id = require_key()
    raw, body = json_body()
    batch = parse(ItemsIn, body)
    records = [Item(item.key, item.data) for item in batch.items]
    return accepted(storage().queue.append(records, key_id, **idempotency(raw)))


@bp.delete("/<anytext:_key>")
def delete_item(_key: str) -> Response:
    """Queue a delete (a versioned tombstone); deleting a missing key is accepted too."""
    key_id = require_key()
    key = path_key()
    return accepted(storage().queue.append([Item(key, None)], key_id, **idempotency(b"")))
