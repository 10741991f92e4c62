"""Every limit and path of the API, named once; the schemas, the OpenAPI document and the docs use these."""

# --- sizes (characters are code points; bytes are of compact UTF-8 JSON) ------------
MAX_KEY_CHARS = 255
MAX_NAME_CHARS = 128
MAX_EVENT_ID_CHARS = 64
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_BATCH = 1000  # records in one write
MAX_MULTI_GET = 100  # keys in one POST /api/v1/items:get
MAX_ITEM_DATA_BYTES = 64 * 1024
MAX_EVENT_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 32  # MariaDB's JSON functions stop at 32 levels
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_WRITE_ID_CHARS = 64
MAX_REASON_CHARS = 200
MAX_IDS_TEXT = 2000  # a comma-separated `ids` query parameter: percent-encoded, it fits gunicorn's request line
# Unicode category Cc (C0, DEL, C1), as the body of a regular expression class.
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
LEVELS = ("debug", "info", "warning", "error", "critical")

# --- paths -----------------------------------------------------------------------------
ITEMS = "/api/v1/items"
ITEM_PREFIX = ITEMS + "/"
ITEMS_GET = ITEMS + ":get"  # the multi-get: a sibling of /api/v1/items/, so no key's path can name it
EVENTS = "/api/v1/events"
WRITES_PREFIX = "/api/v1/writes/"


def status_url(write_id: str) -> str:
    """Where a write's receipt is read."""
    return WRITES_PREFIX + write_id
