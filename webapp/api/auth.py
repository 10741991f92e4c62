"""The scopes a Flask view needs, checked against the key ring of API_KEYS (webapp/http/keys.py)."""
from flask import Flask, current_app, request

from webapp.api.request import KEYS, key_ring
from webapp.http.keys import KeyRing


def init_app(app: Flask, keys: list[tuple[bytes, frozenset[str]]]) -> None:
    """Attach the key ring built from API_KEYS."""
    app.extensions[KEYS] = KeyRing(keys)


def require_key(scope: str = "write") -> str:
    """The caller's key id; 401 without a valid bearer key, 403 if the key lacks `scope`."""
    return key_ring().require(request.headers.get("Authorization"), scope).key_id


def require_read_key() -> None:
    """Reads are open unless READS_REQUIRE_KEY=true; then they need a key with the `read` scope."""
    if current_app.config["SPILLWAY_READS_REQUIRE_KEY"]:
        require_key("read")
