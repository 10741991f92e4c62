"""Bearer API keys, compared in constant time against API_KEYS."""
import hashlib
import hmac

from flask import Flask, current_app, request

from webapp.errors import Unauthorized

EXTENSION = "spillway.keys"


class KeyRing:
    """The configured keys and a stable, non-secret id for each (for per-key state)."""

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = [(k, hashlib.sha256(k).hexdigest()[:16]) for k in keys]

    def identify(self, header: str | None) -> str | None:
        """The id of the key in an Authorization header value, or None."""
        if not header:
            return None
        # Werkzeug decodes header bytes as latin-1: encode back to the raw bytes.
        raw = header.encode("latin-1", "replace")
        scheme, _, token = raw.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        token = token.strip()
        found = None
        for key, key_id in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(key, token):
                found = key_id
        return found


def init_app(app: Flask, keys: list[bytes]) -> None:
    """Attach the key ring built from API_KEYS."""
    app.extensions[EXTENSION] = KeyRing(keys)


def require_key() -> str:
    """The caller's key id; 401 unauthorized without a valid bearer key."""
    key_id = current_app.extensions[EXTENSION].identify(request.headers.get("Authorization"))
    if key_id is None:
        raise Unauthorized()
    return key_id


def require_read_key() -> None:
    """Reads are open unless READS_REQUIRE_KEY=true."""
    if current_app.config["SPILLWAY_READS_REQUIRE_KEY"]:
        require_key()
