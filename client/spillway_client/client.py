"""Spillway: the API's calls, with chunked batch writes, idempotent retries and typed errors."""
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from spillway_client import chunks
from spillway_client.errors import (
    ConnectionFailed,
    DeadlineExceeded,
    InvalidRecord,
    NotFound,
    SpillwayError,
    WaitTimeout,
    WriteDead,
    error_for,
)
from spillway_client.retry import RETRY_STATUSES, parse_retry_after, retry_delay

__version__ = "0.1.0"

# Failures with no HTTP answer, all retried: refused, reset, closed mid-request (RemoteDisconnected
# and BrokenPipe reach us as ConnectionError), a body cut short, a connect or read timeout.
_NO_ANSWER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# ... except these, which a retry cannot fix.
_NOT_RETRIED = (requests.exceptions.SSLError, requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader)

WAIT_FIRST, WAIT_MAX = 0.05, 1.0  # wait_persisted polls after 50 ms, then less often, at most each second


@dataclass(frozen=True, slots=True)
class Receipt:
    """A write's 202: its id, how many records it queued, where its status is, and the Idempotency-Key sent."""

    write_id: str
    accepted: int
    status_url: str
    idempotency_key: str | None = None


class Spillway:
    """A client of one Spillway server (or the nginx in front of several).

    url: the server's base URL ("http://127.0.0.1:8000"); key: an API key from API_KEYS.
    timeout: seconds one HTTP attempt may take; deadline: seconds one request may take with
    all its retries (each chunk of a batch write, each page of a list, each receipt poll),
    then DeadlineExceeded. session: a requests.Session to use (its connection pool, proxies,
    TLS settings); by default the client makes its own and close() closes it.
    """

    def __init__(self, url: str, key: str, *, timeout: float = 10, deadline: float = 60,
                 session: requests.Session | None = None, max_records: int = chunks.MAX_RECORDS,
                 max_body_bytes: int = chunks.MAX_BODY_BYTES) -> None:
        if not 1 <= max_records <= chunks.MAX_RECORDS:
            raise ValueError(f"max_records must be 1 to {chunks.MAX_RECORDS}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.deadline = deadline
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()
        self._rng = random.Random()
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "application/json",
                         "User-Agent": f"spillway-client/{__version__} python-requests/{requests.__version__}"}

    def __repr__(self) -> str:
        return f"Spillway({self.url!r})"  # never the key

    def __enter__(self) -> "Spillway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's own session (a session passed in is left to its owner)."""
        if self._own_session:
            self.session.close()

    # --- writes ---------------------------------------------------------------------

    def put_items(self, items: Iterable[Mapping[str, Any] | tuple[str, Any]]) -> list[Receipt]:
        """Upsert items ({"key", "data"} dicts or (key, data) pairs); one receipt per request sent.

        The items are sent in chunks of at most 1000 records and max_body_bytes, each with
        an Idempotency-Key of its own that every retry of it reuses. If a chunk fails, the
        error's `receipts` holds those of the chunks before it; later chunks are not sent.
        """
        return self._write("/api/v1/items", "items", (chunks.item_record(item) for item in items))

    def post_events(self, events: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Append events ({"name", "level"?, "occurred_at"?, "event_id"?, "data"?}), chunked as put_items.

        occurred_at may be an aware datetime. Without an event_id, an event is stored once
        per request the server accepts; the Idempotency-Key makes the retries of a chunk
        one request.
        """
        return self._write("/api/v1/events", "events", (chunks.event_record(event) for event in events))

    def delete(self, key: str) -> Receipt:
        """Delete an item (a versioned tombstone; a missing key is fine); its receipt."""
        idempotency_key = str(uuid.uuid4())
        response = self._request("DELETE", _item_path(key), idempotency_key=idempotency_key)
        return _receipt(response, idempotency_key)

    def _write(self, path: str, field: str, records: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        receipts: list[Receipt] = []
        bodies = chunks.chunks(records, field, self.max_records, self.max_body_bytes)
        try:
            while True:
                try:
                    body, _count = next(bodies)
                except StopIteration:
                    break
                except (TypeError, ValueError) as err:  # a record that is no record, or not JSON
                    raise InvalidRecord(str(err), code="invalid_record") from err
                idempotency_key = str(uuid.uuid4())
                response = self._request("POST", path, body=body, idempotency_key=idempotency_key)
                receipts.append(_receipt(response, idempotency_key))
        except SpillwayError as err:
            err.receipts = receipts
            raise
        return receipts

    # --- reads ----------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """An item {"key", "data", "version", "updated_at"}, or None if there is none."""
        try:
            item: dict[str, Any] = self._request("GET", _item_path(key)).json()
            return item
        except NotFound:
            return None

    def list_items(self, prefix: str = "", page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Persisted items in key order, optionally under a literal prefix, page by page as they are read."""
        params: dict[str, Any] = {"limit": page_size}
        if prefix:
            params["prefix"] = prefix
        return self._pages("/api/v1/items", "items", params)

    def list_events(self, name: str | None = None, level: str | None = None, since: Any = None,
                    until: Any = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Persisted events, newest first; since (inclusive) and until (exclusive) are RFC 3339
        text or aware datetimes."""
        params: dict[str, Any] = {"limit": page_size}
        for name_, value in (("name", name), ("level", level)):
            if value is not None:
                params[name_] = value
        for name_, value in (("since", since), ("until", until)):
            if value is not None:
                params[name_] = chunks.rfc3339(value)
        return self._pages("/api/v1/events", "events", params)

    def _pages(self, path: str, field: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._request("GET", path, params=params).json()
            yield from page[field]
            if not page.get("next"):
                return
            params = {**params, "cursor": page["next"]}

    def write_status(self, receipt: "Receipt | Mapping[str, Any] | str") -> dict[str, Any]:
        """A write's status: {"write_id", "kind", "status": queued/persisted/dead, "accepted", ...}."""
        status: dict[str, Any] = self._request("GET", _write_path(_write_id(receipt))).json()
        return status

    def wait_persisted(self, receipts: Iterable["Receipt | Mapping[str, Any] | str"], timeout: float = 60,
                       ) -> list[dict[str, Any]]:
        """Poll until every write is persisted; their statuses, in order.

        Raises WriteDead as soon as one is dead (MySQL rejected records of it), WaitTimeout
        (a DeadlineExceeded) if some are still queued after `timeout` seconds, and NotFound
        for a write the server does not know (or whose receipt expired).
        """
        ids = [_write_id(r) for r in receipts]
        pending = list(dict.fromkeys(ids))
        done: dict[str, dict[str, Any]] = {}
        ends = time.monotonic() + timeout
        pause = WAIT_FIRST
        while pending:
            for write_id in list(pending):
                left = ends - time.monotonic()
                try:
                    if left <= 0:
                        raise DeadlineExceeded("no time left")
                    # A poll's retries get the call's deadline, or what is left of the wait if less.
                    status = self._request("GET", _write_path(write_id), deadline=min(self.deadline, left)).json()
                except DeadlineExceeded as err:
                    if left > self.deadline:  # the poll's own deadline, not the wait's: the server is away
                        raise
                    raise WaitTimeout(f"{len(pending)} of {len(set(ids))} writes not persisted after {timeout:g}s",
                                      list(pending)) from err
                if status["status"] == "dead":
                    raise WriteDead(f"write {write_id}: {status.get('dead')} of {status.get('accepted')} records "
                                    "were rejected by MySQL (see its dead_letters table)", status)
                if status["status"] == "persisted":
                    done[write_id] = status
                    pending.remove(write_id)
            if pending:
                time.sleep(max(0.0, min(pause, ends - time.monotonic())))
                pause = min(WAIT_MAX, pause * 2)
        return [done[write_id] for write_id in ids]

    # --- one request, retried -----------------------------------------------------------

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: bytes | None = None, idempotency_key: str | None = None,
                 deadline: float | None = None) -> requests.Response:
        """One API request, retried on 429, 502, 503, 504 and connection failures until `deadline`
        (default self.deadline) seconds have passed; the first other answer >= 400 is raised at once."""
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        limit = self.deadline if deadline is None else deadline
        ends = time.monotonic() + limit
        url = self.url + path
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self.session.request(method, url, params=params, data=body, headers=headers,
                                                timeout=max(0.001, min(self.timeout, ends - time.monotonic())))
            except _NOT_RETRIED as err:
                raise ConnectionFailed(f"{type(err).__name__}: {err}", code="connection_error") from err
            except _NO_ANSWER as err:
                last: SpillwayError = ConnectionFailed(f"{type(err).__name__}: {err}", code="connection_error")
                last.__cause__ = err
            else:
                if response.status_code < 400:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                last = _error(response, retry_after)
                if response.status_code not in RETRY_STATUSES:
                    raise last
            delay = retry_delay(retry_after, attempt, self._rng)
            if time.monotonic() + delay >= ends:
                raise DeadlineExceeded(f"{method} {path}: gave up after {attempt} attempts in {limit:g}s; "
                                       f"last: {last}", last, attempt) from last
            time.sleep(delay)


def _item_path(key: str) -> str:
    return f"/api/v1/items/{quote(key, safe='')}"


def _write_path(write_id: str) -> str:
    return f"/api/v1/writes/{quote(write_id, safe='')}"


def _write_id(receipt: "Receipt | Mapping[str, Any] | str") -> str:
    if isinstance(receipt, Receipt):
        return receipt.write_id
    if isinstance(receipt, Mapping):
        return str(receipt["write_id"])
    return str(receipt)


def _receipt(response: requests.Response, idempotency_key: str) -> Receipt:
    body = response.json()
    return Receipt(body["write_id"], int(body["accepted"]), body["status_url"], idempotency_key)


def _error(response: requests.Response, retry_after: float | None) -> SpillwayError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_for(response.status_code, body, retry_after, response.text if body is None else "")
