"""Bearer API keys with scopes (`write`, `read`, `admin`), compared in constant time against API_KEYS.

A key without scopes writes and reads, as every key did before scopes. Keys
are read when a worker builds the app, so a reload (kill -HUP, `supervisorctl
signal HUP web`) picks up a changed .env.
"""
import hashlib
import hmac
from dataclasses import dataclass

from webapp.http.errors import Forbidden, Unauthorized


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: a stable, non-secret id of their key (for per-key state), and its scopes."""

    key_id: str
    scopes: frozenset[str]


class KeyRing:
    """The configured keys, each with its id and scopes."""

    def __init__(self, keys: list[tuple[bytes, frozenset[str]]]) -> None:
        self._keys = [(k, Caller(hashlib.sha256(k).hexdigest()[:16], scopes)) for k, scopes in keys]

    def identify(self, header: str | None) -> Caller | None:
        """The caller whose key is in an Authorization header value, or None."""
        if not header:
            return None
        # WSGI servers decode header bytes as latin-1: encode back to the raw bytes.
        raw = header.encode("latin-1", "replace")
        scheme, _, token = raw.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        token = token.strip()
        found = None
        for key, caller in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(key, token):
                found = caller
        return found

    def require(self, header: str | None, scope: str) -> Caller:
        """The caller of an Authorization header value; 401 without a valid key, 403 if it lacks `scope`."""
        caller = self.identify(header)
        if caller is None:
            raise Unauthorized()
        if scope not in caller.scopes:
            raise Forbidden(f"This API key does not have the {scope!r} scope; it has "
                            f"{', '.join(sorted(caller.scopes)) or 'none'}.")
        return caller
