"""Item keys in URL paths, and the opaque cursors of keyset pages."""
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from webapp.http import limits
from webapp.http.errors import ValidationFailed
from webapp.http.schemas import CONTROL, CONTROL_MESSAGE


def is_key(key: str) -> bool:
    """True for a key the API accepts: 1 to 255 characters, no control characters."""
    return 1 <= len(key) <= limits.MAX_KEY_CHARS and not CONTROL.search(key)


def key_or_error(key: str) -> str:
    """Check an item key taken from a URL path; 422 if it is not valid."""
    if not 1 <= len(key) <= limits.MAX_KEY_CHARS:
        raise ValidationFailed(details=[{"path": "key", "message": f"must be 1 to {limits.MAX_KEY_CHARS} characters"}])
    if CONTROL.search(key):
        raise ValidationFailed(details=[{"path": "key", "message": CONTROL_MESSAGE}])
    return key


def key_from_path(path_info: str, prefix: str = limits.ITEM_PREFIX) -> str:
    """The item key after `prefix` in a WSGI PATH_INFO, decoded as strict UTF-8; 422 if invalid.

    Werkzeug's converter would turn invalid UTF-8 into U+FFFD and so name a
    different key; keys are compared byte for byte, so decode it here.
    """
    try:
        key = path_info.encode("latin-1")[len(prefix):].decode("utf-8")
    except UnicodeError:
        raise ValidationFailed(details=[{"path": "key", "message": "must be percent-encoded UTF-8"}]) from None
    return key_or_error(key)


def encode_cursor(position: Any) -> str:
    """An opaque cursor for a list position (a JSON-able value)."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, check: Callable[[Any], bool]) -> Any:
    """The position inside a cursor, validated by `check`; 422 if it is not one we issued."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        if check(position):
            return position
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        pass
    raise ValidationFailed(details=[{"path": "cursor",
                                     "message": "is not a cursor this API issued; pass back `next` unchanged"}])
