"""The API's calls, once, for both clients: what to send, when to retry, what an answer means.

Each call is a generator that does no I/O itself (the sans-IO idea of h11 and
httpx): it yields a Send (one HTTP attempt), a Sleep (a wait between attempts or
polls) or an Emit (an item of a list, for an iterator), and is sent back the
Answer or NoAnswer of each Send. Client (requests, time.sleep) and AsyncClient
(httpx, asyncio.sleep) each run them with their own I/O, so chunking, the
Idempotency-Keys, the request ids, retries, their logging and the deadlines are
the same code in both.
"""
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

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
from spillway_client.models import Event, Item, Receipt, WriteStatus
from spillway_client.retry import RETRY_STATUSES, parse_retry_after, retry_delay

__version__ = "0.2.0"
log = logging.getLogger("spillway_client")
WAIT_FIRST, WAIT_MAX = 0.05, 1.0  # wait_persisted polls after 50 ms, then less often, at most each second
URL_ENV, KEY_ENV = "SPILLWAY_URL", "SPILLWAY_API_KEY"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """One HTTP attempt for the client to make."""

    method: str
    url: str
    params: Mapping[str, Any] | None
    body: bytes | None
    headers: dict[str, str]
    timeout: float


@dataclass(frozen=True, slots=True)
class Sleep:
    """A pause for the client to take."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    """A value for the client's iterator to yield."""

    value: Any


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, headers (names in lower case) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """An attempt that got no HTTP answer; `retry` is False for what a retry cannot fix (TLS, a bad URL)."""

    message: str
    retry: bool
    cause: BaseException | None = field(default=None, compare=False)


Step = Generator[Send | Sleep, Answer | NoAnswer | None, T]
ListStep = Generator[Send | Sleep | Emit, Answer | NoAnswer | None, None]
AnyReceipt = Receipt | WriteStatus | Mapping[str, Any] | str


class Calls:
    """The settings of a client and its calls, as generators (see the module's docstring).

    url and key default to SPILLWAY_URL and SPILLWAY_API_KEY from the environment; without
    a key no Authorization header is sent (reads are open unless the server says otherwise).
    """

    def __init__(self, url: str | None, key: str | None, timeout: float, deadline: float, max_records: int,
                 max_body_bytes: int, user_agent: str) -> None:
        url = url if url is not None else os.environ.get(URL_ENV)
        key = key if key is not None else os.environ.get(KEY_ENV)
        if not url:
            raise ValueError(f"no server URL: pass url (\"http://127.0.0.1:8000\") or set {URL_ENV}")
        if not 1 <= max_records <= chunks.MAX_RECORDS:
            raise ValueError(f"max_records must be 1 to {chunks.MAX_RECORDS}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.deadline = deadline
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes
        self.rng = random.Random()
        self.headers = {"Accept": "application/json", "User-Agent": f"spillway-client/{__version__} {user_agent}"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    # --- writes ---------------------------------------------------------------------

    def write(self, path: str, field: str, records: Iterable[Mapping[str, Any]]) -> Step[list[Receipt]]:
        """POST records in chunks, each with an Idempotency-Key of its own; a receipt per chunk."""
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
                answer = yield from self.request("POST", path, body=body, idempotency_key=idempotency_key)
                receipts.append(_receipt(answer, idempotency_key))
        except SpillwayError as err:
            err.receipts = receipts
            raise
        return receipts

    def delete(self, key: str) -> Step[Receipt]:
        """DELETE an item, with an Idempotency-Key."""
        idempotency_key = str(uuid.uuid4())
        answer = yield from self.request("DELETE", item_path(key), idempotency_key=idempotency_key)
        return _receipt(answer, idempotency_key)

    # --- reads ----------------------------------------------------------------------

    def get(self, key: str) -> Step[Item | None]:
        """One item, or None."""
        try:
            answer = yield from self.request("GET", item_path(key))
        except NotFound:
            return None
        return Item.from_json(answer.json())

    def pages(self, path: str, field: str, params: dict[str, Any],
              parse: Callable[[Mapping[str, Any]], Any]) -> ListStep:
        """Every entry of a list, page by page, following the `next` cursors."""
        while True:
            answer = yield from self.request("GET", path, params=params)
            page = answer.json()
            for entry in page[field]:
                yield Emit(parse(entry))
            if not page.get("next"):
                return
            params = {**params, "cursor": page["next"]}

    def list_items(self, prefix: str, page_size: int) -> ListStep:
        """Persisted items in key order."""
        params: dict[str, Any] = {"limit": page_size, **({"prefix": prefix} if prefix else {})}
        return self.pages("/api/v1/items", "items", params, Item.from_json)

    def list_events(self, name: str | None, level: str | None, since: Any, until: Any, page_size: int) -> ListStep:
        """Persisted events, newest first."""
        params: dict[str, Any] = {"limit": page_size}
        for name_, value in (("name", name), ("level", level)):
            if value is not None:
                params[name_] = value
        for name_, value in (("since", since), ("until", until)):
            if value is not None:
                params[name_] = chunks.rfc3339(value)
        return self.pages("/api/v1/events", "events", params, Event.from_json)

    def write_status(self, receipt: AnyReceipt) -> Step[WriteStatus]:
        """One write's status."""
        answer = yield from self.request("GET", write_path(write_id(receipt)))
        return WriteStatus.from_json(answer.json())

    def wait_persisted(self, receipts: Iterable[AnyReceipt], timeout: float) -> Step[list[WriteStatus]]:
        """Poll until every write is persisted (WriteDead, WaitTimeout, NotFound otherwise)."""
        ids = [write_id(r) for r in receipts]
        pending = list(dict.fromkeys(ids))
        done: dict[str, WriteStatus] = {}
        ends = time.monotonic() + timeout
        pause = WAIT_FIRST
        while pending:
            for write in list(pending):
                left = ends - time.monotonic()
                try:
                    if left <= 0:
                        raise DeadlineExceeded("no time left")
                    # A poll's retries get the call's deadline, or what is left of the wait if less.
                    answer = yield from self.request("GET", write_path(write), deadline=min(self.deadline, left))
                except DeadlineExceeded as err:
                    if left > self.deadline:  # the poll's own deadline, not the wait's: the server is away
                        raise
                    raise WaitTimeout(f"{len(pending)} of {len(set(ids))} writes not persisted after {timeout:g}s",
                                      list(pending)) from err
                status = WriteStatus.from_json(answer.json())
                if status.status == "dead":
                    raise WriteDead(f"write {write}: {status.dead} of {status.accepted} records were rejected by "
                                    "MySQL (see its dead_letters table)", status, answer.headers.get("x-request-id"))
                if status.status == "persisted":
                    done[write] = status
                    pending.remove(write)
            if pending:
                yield Sleep(max(0.0, min(pause, ends - time.monotonic())))
                pause = min(WAIT_MAX, pause * 2)
        return [done[write] for write in ids]

    # --- one request, retried -------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: bytes | None = None,
                idempotency_key: str | None = None, deadline: float | None = None) -> Step[Answer]:
        """One API request, retried on 429, 502, 503, 504 and failures with no answer until `deadline`
        (default self.deadline) seconds have passed; the first other answer >= 400 is raised at once.

        Each attempt carries its own X-Request-ID, `<call>-<attempt>`, so the server's log
        lines of all the attempts of one call share a prefix. Each retry is logged as a
        warning on the "spillway_client" logger, with `attempt`, `wait` and `reason`.
        """
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        limit = self.deadline if deadline is None else deadline
        ends = time.monotonic() + limit
        call = uuid.uuid4().hex[:16]
        attempt = 0
        while True:
            attempt += 1
            request_id = headers["X-Request-ID"] = f"{call}-{attempt}"
            reply = yield Send(method, self.url + path, params, body, dict(headers),
                               max(0.001, min(self.timeout, ends - time.monotonic())))
            retry_after: float | None = None
            if isinstance(reply, Answer):
                if reply.status < 400:
                    return reply
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
                last = _error(reply, retry_after, request_id)
                if reply.status not in RETRY_STATUSES:
                    raise last
                reason = f"{reply.status} {last.code}"
            else:
                assert reply is not None, "a Send is answered with an Answer or a NoAnswer"
                last = ConnectionFailed(reply.message, code="connection_error", request_id=request_id)
                last.__cause__ = reply.cause
                if not reply.retry:
                    raise last
                reason = reply.message
            delay = retry_delay(retry_after, attempt, self.rng)
            if time.monotonic() + delay >= ends:
                raise DeadlineExceeded(f"{method} {path}: gave up after {attempt} attempts in {limit:g}s; "
                                       f"last: {last}", last, attempt) from last
            log.warning("%s %s: attempt %d failed (%s); retrying in %.2f s", method, path, attempt, reason, delay,
                        extra={"attempt": attempt, "wait": delay, "reason": reason, "request_id": request_id})
            yield Sleep(delay)


def item_path(key: str) -> str:
    """The path of an item, its key percent-encoded ('/' as %2F)."""
    return f"/api/v1/items/{quote(key, safe='')}"


def write_path(write: str) -> str:
    """The path of a write's status."""
    return f"/api/v1/writes/{quote(write, safe='')}"


def write_id(receipt: AnyReceipt) -> str:
    """The write id of a Receipt, a WriteStatus, a receipt dict of the HTTP API, or an id."""
    if isinstance(receipt, Receipt | WriteStatus):
        return receipt.write_id
    if isinstance(receipt, Mapping):
        return str(receipt["write_id"])
    return str(receipt)


def _receipt(answer: Answer, idempotency_key: str) -> Receipt:
    return Receipt.from_json(answer.json(), idempotency_key, answer.headers.get("x-request-id"))


def _error(answer: Answer, retry_after: float | None, sent_id: str) -> SpillwayError:
    try:
        body = answer.json()
    except ValueError:
        body = None
    text = answer.body.decode("utf-8", "replace") if body is None else ""
    return error_for(answer.status, body, retry_after, text, answer.headers.get("x-request-id") or sent_id)
