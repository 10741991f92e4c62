"""Items: records looked up by an exact key (GET one, GET many, list, batch upsert, delete)."""
from flask import Blueprint, Response, request

from webapp.api.auth import require_read_key
from webapp.api.request import json_body, path_key, storage, write
from webapp.api.responses import json_response
from webapp.http.conditional import etag, none_match
from webapp.http.decode import item_keys, query
from webapp.http.environ import PEEKED
from webapp.http.errors import ItemNotFound
from webapp.http.paths import decode_cursor, encode_cursor, is_key
from webapp.http.render import item_json, within_bytes
from webapp.http.schemas import ItemListQuery, NoQuery
from webapp.jsonio import dumps
from webapp.storage.sql import items as items_sql

# Prefixed with /api/v1 only: the multi-get, /api/v1/items:get, is a sibling of /api/v1/items/<key>.
bp = Blueprint("items", __name__, url_prefix="/api/v1")


@bp.get("/items/<anytext:_key>")
def get_item(_key: str) -> Response:
    """One item: from Redis, or on a miss from MySQL (then cached); 304 if If-None-Match matches its ETag."""
    require_read_key()
    key = path_key()
    if request.args:
        query(NoQuery, request.args.lists())
    entry = storage().cache.get(key, peeked=request.environ.get(PEEKED, False))
    if entry.data is None:
        raise ItemNotFound()
    tag = etag(entry.version)
    if none_match(request.headers.get("If-None-Match"), tag):
        return Response(status=304, headers={"ETag": tag})
    return json_response(item_json(key, entry.data, entry.version, entry.updated_us), headers={"ETag": tag})


@bp.post("/items:get")
def get_items() -> Response:
    """Up to 100 items by key, read as GET of one reads them (cache, then MySQL); the others named as missing."""
    require_read_key()
    if request.args:
        query(NoQuery, request.args.lists())
    wanted = item_keys(json_body())
    entries = storage().cache.get_many(wanted)
    found = [item_json(key, e.data, e.version, e.updated_us) for key, e in zip(wanted, entries) if e.data is not None]
    missing = [key for key, e in zip(wanted, entries) if e.data is None]
    return json_response('{"items":[' + ",".join(found) + '],"missing":' + dumps(missing) + "}")


def _is_key_cursor(position: object) -> bool:
    """{"k": a key as the API accepts keys}: anything else was not issued by us."""
    return (isinstance(position, dict) and len(position) == 1 and isinstance(position.get("k"), str)
            and is_key(position["k"]))


@bp.get("/items")
def list_items() -> Response:
    """Persisted items in key order, keyset-paginated."""
    require_read_key()
    q = query(ItemListQuery, request.args.lists())
    after = decode_cursor(q.cursor, _is_key_cursor)["k"] if q.cursor else None
    s = storage().settings
    rows = storage().reads.run(lambda con: items_sql.page(con, q.prefix, after, q.limit + 1, s.db_list_timeout),
                               timeout=s.db_list_timeout)
    parts, more = within_bytes([item_json(*row) for row in rows[: q.limit]], s.list_max_bytes)
    more = more or len(rows) > q.limit
    next_cursor = encode_cursor({"k": rows[len(parts) - 1][0]}) if more else None
    body = '{"items":[' + ",".join(parts) + '],"next":' + dumps(next_cursor) + "}"
    return json_response(body)


@bp.post("/items")
def post_items() -> Response:
    """Queue a batch upsert; 202 with a receipt once Redis holds it (webapp/http/writes.py)."""
    return write()


@bp.delete("/items/<anytext:_key>")
def delete_item(_key: str) -> Response:
    """Queue a delete (a versioned tombstone); deleting a missing key is accepted too."""
    return write()
