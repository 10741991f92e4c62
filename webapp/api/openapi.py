"""The OpenAPI 3.1 document of the API, served at /openapi.json.

Request bodies and query parameters come from the msgspec Structs that
validate them (webapp/http/schemas.py), so the two cannot drift; responses and
headers are declared here. Tests check that every route is documented and
fuzz the live server against this document with schemathesis
(tests/e2e/test_openapi.py).
"""
from typing import Any

import msgspec

from webapp.http import limits, schemas

TIMESTAMP = {"type": "string", "format": "date-time"}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}}
REQUEST_ID = {"X-Request-ID": {"description": "The request's id (yours if you sent a sane one)",
                                "schema": {"type": "string"}}}
ETAG = {"ETag": {"description": 'The item\'s strong validator, made of its version: "v<version>"',
                 "schema": {"type": "string", "pattern": '^"v[0-9]+"$'}}}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "ETags from earlier answers (a list, W/ allowed, compared weakly), or `*`: "
                                "304 without a body when one matches the item's"}
RATE_LIMIT = {  # draft-ietf-httpapi-ratelimit-headers; only with WRITE_RATE_LIMIT set
    "RateLimit-Policy": {"description": 'The API key\'s write limit, e.g. `"writes";q=100;w=60`: 100 writes a minute '
                                        "(only with WRITE_RATE_LIMIT)", "schema": {"type": "string"}},
    "RateLimit": {"description": 'What the limit leaves, e.g. `"writes";r=42;t=35`: 42 writes may go now, the whole '
                                 "limit is back in 35 s (on a 429, r=0 and t is the Retry-After)",
                  "schema": {"type": "string"}},
}
BODIES = (schemas.ItemsIn, schemas.EventsIn, schemas.RedriveIn, schemas.ItemKeysIn)
_REF = "#/components/schemas/{name}"

ERROR_TEXT = {
    400: "Malformed JSON, invalid UTF-8, NaN or Infinity (`invalid_json`)",
    401: "A valid bearer key is needed (`unauthorized`)",
    403: "The key lacks the scope this call needs (`forbidden`)",
    404: "Nothing there (`not_found`; a receipt past RECEIPT_TTL: `receipt_expired`)",
    408: "The body did not arrive within BODY_READ_TIMEOUT (`request_timeout`); nothing queued",
    413: "Body over MAX_BODY_BYTES (`payload_too_large`)",
    415: "Body is not application/json (`unsupported_media_type`)",
    422: "Wrong shape, types, sizes or counts; unknown fields or parameters (`validation_error`); on a write, "
         "also an Idempotency-Key already used with another body (`idempotency_key_reused`), nothing queued",
    429: "Writes past WRITE_RATE_LIMIT for this key (`rate_limited`)",
    503: "A server the request needs is down, saturated or backpressured; retry after Retry-After",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(name=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        headers = dict(REQUEST_ID)
        if status in (429, 503):
            headers.update(RETRY_AFTER)
        if status == 429:
            headers.update(RATE_LIMIT)
        out[str(status)] = {"description": ERROR_TEXT[status], "headers": headers, "content": _json(_ref("Error"))}
    return out


def _ok(status: int, description: str, schema: dict[str, Any],
        extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {str(status): {"description": description, "headers": {**REQUEST_ID, **(extra_headers or {})},
                          "content": _json(schema)}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def parameters(kind: type) -> list[dict[str, Any]]:
    """The query parameters of a query Struct (webapp/http/schemas.py), each with its schema."""
    _, components = msgspec.json.schema_components([kind], ref_template=_REF)
    properties = components[kind.__name__]["properties"]
    out = []
    for name, schema in properties.items():
        schema = dict(schema)
        if "anyOf" in schema:  # `X | None`: a parameter is optional anyway, so document X
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        description = schema.pop("description", "")
        out.append(_query(name, schema, description))
    return out


WRITE_HEADERS = [{"name": "Idempotency-Key", "in": "header", "required": False,
                  "schema": {"type": "string", "minLength": 1, "maxLength": limits.MAX_IDEMPOTENCY_KEY_CHARS},
                  "description": "Same key and body within 24 h: the same receipt again, nothing queued; "
                                 "the same key with another body: 422 `idempotency_key_reused`"}]
READ_ERRORS = _errors(401, 403, 422, 503)  # 401 and 403 only when READS_REQUIRE_KEY=true
WRITE_ERRORS = _errors(400, 401, 403, 408, 413, 415, 422, 429, 503)
ADMIN_ERRORS = _errors(401, 403, 422, 503)
WRITE_SCOPE = [{"bearer": ["write"]}]
READ_SCOPE = [{}, {"bearer": ["read"]}]  # open unless READS_REQUIRE_KEY=true
ADMIN_SCOPE = [{"bearer": ["admin"]}]
RECEIPT = _ok(202, "Queued durably in Redis; see status_url", _ref("Receipt"),
              {"Location": {"description": "The status URL", "schema": {"type": "string"}}, **RATE_LIMIT})


def _schemas() -> dict[str, Any]:
    """Component schemas: the request Structs plus the response shapes."""
    _, schemas_ = msgspec.json.schema_components(BODIES, ref_template=_REF)
    levels = list(limits.LEVELS)
    nullable_int = {"type": ["integer", "null"]}
    schemas_.update({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "required": ["path", "message"],
                            "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}}},
        "Item": {"type": "object", "required": ["key", "data", "version", "updated_at"], "additionalProperties": False,
                 "properties": {"key": {"type": "string"}, "data": {"type": "object"},
                                "version": {"type": "integer"}, "updated_at": TIMESTAMP}},
        "ItemPage": {"type": "object", "required": ["items", "next"], "additionalProperties": False,
                     "properties": {"items": {"type": "array", "items": _ref("Item")},
                                    "next": {"type": ["string", "null"]}}},
        "ItemsFound": {"type": "object", "required": ["items", "missing"], "additionalProperties": False,
                       "properties": {"items": {"type": "array", "items": _ref("Item"),
                                                "description": "The items found, in the order asked"},
                                      "missing": {"type": "array", "items": {"type": "string"},
                                                  "description": "The keys asked that have no item (never "
                                                                 "written, or deleted), in the order asked"}}},
        "Event": {"type": "object", "additionalProperties": False,
                  "required": ["seq", "event_id", "name", "level", "occurred_at", "received_at", "data"],
                  "properties": {"seq": {"type": "integer"}, "event_id": {"type": ["string", "null"]},
                                 "name": {"type": "string"}, "level": {"enum": levels},
                                 "occurred_at": TIMESTAMP, "received_at": TIMESTAMP,
                                 "data": {"type": ["object", "null"]}}},
        "EventPage": {"type": "object", "required": ["events", "next"], "additionalProperties": False,
                      "properties": {"events": {"type": "array", "items": _ref("Event")},
                                     "next": {"type": ["string", "null"]}}},
        "Receipt": {"type": "object", "required": ["write_id", "accepted", "status_url", "durability"],
                    "additionalProperties": False,
                    "properties": {"write_id": {"type": "string"}, "accepted": {"type": "integer", "minimum": 1},
                                   "status_url": {"type": "string"},
                                   "durability": {"enum": ["aof", "fsync", "replica"],
                                                  "description": "What this 202 promises (WRITE_DURABILITY)"}}},
        "WriteStatus": {"type": "object", "additionalProperties": False,
                        "required": ["write_id", "kind", "status", "accepted", "persisted", "dead", "accepted_at",
                                     "persisted_at"],
                        "properties": {"write_id": {"type": "string"}, "kind": {"enum": ["items", "events"]},
                                       "status": {"enum": ["queued", "persisted", "dead"]},
                                       "accepted": {"type": "integer"}, "persisted": {"type": "integer"},
                                       "dead": {"type": "integer"}, "accepted_at": TIMESTAMP,
                                       "persisted_at": {"anyOf": [TIMESTAMP, {"type": "null"}]},
                                       "duplicate_of": {"type": "string", "description": (
                                           "A retry with the same Idempotency-Key that Redis no longer knew: none of "
                                           "its records was written again; this write holds them")}}},
        "DeadLetter": {"type": "object", "additionalProperties": False,
                       "required": ["id", "version", "write_id", "kind", "record", "reason", "failed_us",
                                    "accepted_us"],
                       "properties": {"id": {"type": "integer"}, "version": {"type": "integer"},
                                      "write_id": {"type": "string"}, "kind": {"enum": ["items", "events"]},
                                      "record": {"type": "object", "description": "The record as it was queued"},
                                      "reason": {"type": "string", "description": "What MySQL said"},
                                      "failed_us": {"type": "integer"},
                                      "accepted_us": {"type": ["integer", "null"]}}},
        "DeadLetterPage": {"type": "object", "required": ["dead_letters", "next"], "additionalProperties": False,
                           "properties": {"dead_letters": {"type": "array", "items": _ref("DeadLetter")},
                                          "next": {"type": ["string", "null"]}}},
        "Redriven": {"type": "object", "required": ["matched", "dry_run"], "additionalProperties": False,
                     "properties": {"matched": {"type": "integer"}, "dry_run": {"type": "boolean"},
                                    "task_id": {"type": "string", "description": "spillway.redrive in Flower"}}},
        "Purged": {"type": "object", "required": ["purged"], "additionalProperties": False,
                   "properties": {"purged": {"type": "integer"}}},
        "UnreadablePage": {"type": "object", "required": ["entries", "next"], "additionalProperties": False,
                           "properties": {"entries": {"type": "array", "items": {"type": "object"}},
                                          "next": {"type": ["string", "null"]}}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Ready": {"type": "object", "required": ["status"], "properties": {
            "status": {"enum": ["ok", "degraded", "unavailable"]},
            "down": {"type": "array", "items": {"enum": ["mysql", "redis"]}},
            "checks": {"type": "object", "required": ["mysql", "redis"], "properties": {
                "mysql": {"type": "string"}, "redis": {"type": "string"},
                "queue": {"type": "object", "properties": {"depth": {"type": "integer"}, "bytes": {"type": "integer"},
                                                           "oldest_age_s": {"type": "number"},
                                                           "durability": {"enum": ["aof", "fsync", "replica"]}}},
                "workers": {"type": "object", "properties": {"alive": nullable_int}},
                "drain": {"type": "object", "properties": {"retrying": {"type": "boolean"},
                                                           "error": {"type": "string"},
                                                           "for_s": {"type": "number"}}}}}}},
    })
    return schemas_


def _only(kind: type, *names: str, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Some of a query Struct's parameters: those named (all if none), less `without`."""
    return [p for p in parameters(kind) if (not names or p["name"] in names) and p["name"] not in without]


def _dead_letter_paths() -> dict[str, Any]:
    """The dead-letter calls (admin scope)."""
    letters, unreadable = schemas.DeadLetterQuery, schemas.UnreadableQuery
    return {
        "/api/v1/dead-letters": {
            "get": {"summary": "Records MySQL rejected, with the reason, oldest first",
                    "operationId": "listDeadLetters",
                    "security": ADMIN_SCOPE, "parameters": _only(letters, without=("all",)),
                    "responses": {**_ok(200, "A page of dead letters", _ref("DeadLetterPage")), **ADMIN_ERRORS}},
            "delete": {"summary": "Purge dead letters matching the filters (or all=true)",
                       "operationId": "purgeDeadLetters", "security": ADMIN_SCOPE,
                       "parameters": _only(letters, without=("cursor", "limit")),
                       "responses": {**_ok(200, "How many were purged", _ref("Purged")), **ADMIN_ERRORS}},
        },
        "/api/v1/dead-letters/{dead_letter_id}": {
            "get": {"summary": "One dead letter", "operationId": "getDeadLetter", "security": ADMIN_SCOPE,
                    "parameters": [{"name": "dead_letter_id", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 0}}],
                    "responses": {**_ok(200, "The dead letter", _ref("DeadLetter")), **_errors(404),
                                  **ADMIN_ERRORS}},
        },
        "/api/v1/dead-letters/redrive": {
            "post": {"summary": "Send dead letters back through the queue with their original versions "
                                "(a spillway.redrive task); dry_run only counts",
                     "operationId": "redriveDeadLetters", "security": ADMIN_SCOPE,
                     "requestBody": {"required": True, "content": _json(_ref("RedriveIn"))},
                     "responses": {**_ok(202, "Started", _ref("Redriven")), **_ok(200, "Counted", _ref("Redriven")),
                                   **_errors(400, 413, 415), **ADMIN_ERRORS}},
        },
        "/api/v1/dead-letters/unreadable": {
            "get": {"summary": "Queue entries the drain could not read", "operationId": "listUnreadable",
                    "security": ADMIN_SCOPE,
                    "parameters": _only(unreadable, "after", "limit"),
                    "responses": {**_ok(200, "A page of entries", _ref("UnreadablePage")), **ADMIN_ERRORS}},
            "delete": {"summary": "Purge unreadable entries (by ids, or all=true)", "operationId": "purgeUnreadable",
                       "security": ADMIN_SCOPE, "parameters": _only(unreadable, "ids", "all"),
                       "responses": {**_ok(200, "How many were purged", _ref("Purged")), **ADMIN_ERRORS}},
        },
    }


def _paths() -> dict[str, Any]:
    key_param = {"name": "key", "in": "path", "required": True, "schema": msgspec.json.schema(schemas.Key)}
    return {
        "/api/v1/items/{key}": {
            "get": {"summary": "One item: from Redis, or on a miss from MySQL (then cached)", "operationId": "getItem",
                    "parameters": [key_param, IF_NONE_MATCH],
                    "security": READ_SCOPE,
                    "responses": {**_ok(200, "The item", _ref("Item"), ETAG),
                                  "304": {"description": "If-None-Match matched: the item is unchanged (no body)",
                                          "headers": {**REQUEST_ID, **ETAG}},
                                  **_errors(404), **READ_ERRORS}},
            "delete": {"summary": "Delete an item (a versioned tombstone); a missing key is accepted",
                       "operationId": "deleteItem", "security": WRITE_SCOPE,
                       "parameters": [key_param, *WRITE_HEADERS],
                       "responses": {**RECEIPT, **_errors(401, 403, 422, 429, 503)}},
        },
        "/api/v1/items": {
            "get": {"summary": "Persisted items in key order (UTF-8 bytes), keyset-paginated",
                    "operationId": "listItems",
                    "parameters": parameters(schemas.ItemListQuery),
                    "security": READ_SCOPE,
                    "responses": {**_ok(200, "A page of items", _ref("ItemPage")), **READ_ERRORS}},
            "post": {"summary": f"Upsert a batch of 1-{limits.MAX_BATCH} items (all or nothing)",
                     "operationId": "postItems",
                     "security": WRITE_SCOPE, "parameters": WRITE_HEADERS,
                     "requestBody": {"required": True, "content": _json(_ref("ItemsIn"))},
                     "responses": {**RECEIPT, **WRITE_ERRORS}},
        },
        limits.ITEMS_GET: {
            "post": {"summary": f"Up to {limits.MAX_MULTI_GET} items by key in one request, read as getItem reads "
                                "one (cache, then MySQL; writes not yet persisted included). A read: it changes "
                                "nothing and needs only the read scope (a POST because 100 keys of up to 255 "
                                "characters do not fit in a URL)",
                     "operationId": "getItems", "security": READ_SCOPE,
                     "requestBody": {"required": True, "content": _json(_ref("ItemKeysIn"))},
                     "responses": {**_ok(200, "The items found, and the keys missing", _ref("ItemsFound")),
                                   **_errors(400, 408, 413, 415), **READ_ERRORS}},
        },
        "/api/v1/events": {
            "get": {"summary": "Persisted events, newest occurred_at first, then arrival", "operationId": "listEvents",
                    "parameters": parameters(schemas.EventListQuery),
                    "security": READ_SCOPE,
                    "responses": {**_ok(200, "A page of events", _ref("EventPage")), **READ_ERRORS}},
            "post": {"summary": f"Append a batch of 1-{limits.MAX_BATCH} events (all or nothing)",
                     "operationId": "postEvents",
                     "security": WRITE_SCOPE, "parameters": WRITE_HEADERS,
                     "requestBody": {"required": True, "content": _json(_ref("EventsIn"))},
                     "responses": {**RECEIPT, **WRITE_ERRORS}},
        },
        "/api/v1/writes/{write_id}": {
            "get": {"summary": "Where a write stands (receipts are kept at least 24 h)", "operationId": "getWrite",
                    "parameters": [{"name": "write_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "security": READ_SCOPE,
                    "responses": {**_ok(200, "The receipt", _ref("WriteStatus")), **_errors(404), **READ_ERRORS}},
        },
        **_dead_letter_paths(),
        "/livez": {"get": {"summary": "200 while the process answers (liveness)", "operationId": "livez",
                           "responses": _ok(200, "Serving", _ref("Health"))}},
        "/healthz": {"get": {"summary": "The older name of /livez", "operationId": "healthz", "deprecated": True,
                             "responses": _ok(200, "Serving", _ref("Health"))}},
        "/readyz": {"get": {"summary": "Can the API serve? `checks` only with a valid API key",
                            "operationId": "readyz",
                            "security": [{}, {"bearer": []}],
                            "responses": {**_ok(200, "Ready: ok, or degraded (no live drain, drain retrying, "
                                                     "Redis full, MySQL down: cached reads and writes still work)",
                                                _ref("Ready")),
                                          **_errors(401),
                                          "503": {"description": "Redis is unreachable: nothing can be written",
                                                  "headers": {**REQUEST_ID, **RETRY_AFTER},
                                                  "content": _json(_ref("Ready"))}}}},
        "/metrics": {"get": {"summary": "Prometheus text format", "operationId": "metrics",
                             "responses": {"200": {"description": "Metrics", "headers": REQUEST_ID,
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_errors(503)}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                  "responses": _ok(200, "OpenAPI 3.1", {"type": "object"})}},
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spillway", "version": "1.0.0",
                 "description": "Reads from Redis; writes queued durably in Redis and drained into MySQL in batches."},
        "paths": _paths(),
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {
                           "type": "http", "scheme": "bearer",
                           "description": "A key from API_KEYS, with scopes write, read or admin (a key without "
                                          "scopes writes and reads); each call names the scope it needs"}}},
    }
