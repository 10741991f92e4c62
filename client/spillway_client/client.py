"""Client: the API's calls over requests, blocking (AsyncClient in aio.py is the asyncio one)."""
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import requests

from spillway_client import calls, chunks
from spillway_client.calls import Answer, AnyReceipt, Emit, NoAnswer, Send, Sleep
from spillway_client.models import Event, Item, Receipt, WriteStatus

__version__ = calls.__version__
T = TypeVar("T")

# Failures with no HTTP answer, all retried: refused, reset, closed mid-request (RemoteDisconnected
# and BrokenPipe reach us as ConnectionError), a body cut short, a connect or read timeout.
_NO_ANSWER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# ... except these, which a retry cannot fix.
_NOT_RETRIED = (requests.exceptions.SSLError, requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader)


class Client:
    """A client of one Spillway server (or the nginx in front of several).

    url: the server's base URL ("http://127.0.0.1:8000"), default SPILLWAY_URL from the
    environment; key: an API key from the server's API_KEYS, default SPILLWAY_API_KEY.
    timeout: seconds one HTTP attempt may take; deadline: seconds one request may take with
    all its retries (each chunk of a batch write, each page of a list, each receipt poll),
    then DeadlineExceeded. session: a requests.Session to use (its connection pool, proxies,
    TLS settings); by default the client makes its own and close() closes it.
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 10,
                 deadline: float = 60, session: requests.Session | None = None,
                 max_records: int = chunks.MAX_RECORDS, max_body_bytes: int = chunks.MAX_BODY_BYTES) -> None:
        self._calls = calls.Calls(url, key, timeout, deadline, max_records, max_body_bytes,
                                  f"python-requests/{requests.__version__}")
        self.url, self.key = self._calls.url, self._calls.key
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the key

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's own session (a session passed in is left to its owner)."""
        if self._own_session:
            self.session.close()

    # --- the calls (docs/client.md) ------------------------------------------------------

    def put_items(self, items: Iterable[Mapping[str, Any] | tuple[str, Any]]) -> list[Receipt]:
        """Upsert items ({"key", "data"} dicts or (key, data) pairs); one receipt per request sent.

        The items are sent in chunks of at most 1000 records and max_body_bytes, each with
        an Idempotency-Key of its own that every retry of it reuses. If a chunk fails, the
        error's `receipts` holds those of the chunks before it; later chunks are not sent.
        """
        return self._run(self._calls.write("/api/v1/items", "items", (chunks.item_record(i) for i in items)))

    def post_events(self, events: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Append events ({"name", "level"?, "occurred_at"?, "event_id"?, "data"?}), chunked as put_items.

        occurred_at may be an aware datetime. Without an event_id, an event is stored once
        per request the server accepts; the Idempotency-Key makes the retries of a chunk
        one request.
        """
        return self._run(self._calls.write("/api/v1/events", "events", (chunks.event_record(e) for e in events)))

    def delete(self, key: str) -> Receipt:
        """Delete an item (a versioned tombstone; a missing key is fine); its receipt."""
        return self._run(self._calls.delete(key))

    def get(self, key: str) -> Item | None:
        """An item, or None if there is none."""
        return self._run(self._calls.get(key))

    def list_items(self, prefix: str = "", page_size: int = 100) -> Iterator[Item]:
        """Persisted items in key order, optionally under a literal prefix, page by page as they are read."""
        return self._iterate(self._calls.list_items(prefix, page_size))

    def list_events(self, name: str | None = None, level: str | None = None, since: Any = None,
                    until: Any = None, page_size: int = 100) -> Iterator[Event]:
        """Persisted events, newest first; since (inclusive) and until (exclusive) are RFC 3339
        text or aware datetimes."""
        return self._iterate(self._calls.list_events(name, level, since, until, page_size))

    def write_status(self, receipt: AnyReceipt) -> WriteStatus:
        """A write's status: queued, persisted or dead, with its counts."""
        return self._run(self._calls.write_status(receipt))

    def wait_persisted(self, receipts: Iterable[AnyReceipt], timeout: float = 60) -> list[WriteStatus]:
        """Poll until every write is persisted; their statuses, in order.

        Raises WriteDead as soon as one is dead (MySQL rejected records of it), WaitTimeout
        (a DeadlineExceeded) if some are still queued after `timeout` seconds, and NotFound
        for a write the server does not know (or whose receipt expired).
        """
        return self._run(self._calls.wait_persisted(receipts, timeout))

    # --- running the calls with requests ------------------------------------------------------

    def _run(self, steps: Generator[Send | Sleep, Answer | NoAnswer | None, T]) -> T:
        reply: Answer | NoAnswer | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            reply = self._do(step)

    def _iterate(self, steps: calls.ListStep) -> Iterator[Any]:
        reply: Answer | NoAnswer | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration:
                return
            if isinstance(step, Emit):
                yield step.value
                reply = None
            else:
                reply = self._do(step)

    def _do(self, step: Send | Sleep) -> Answer | NoAnswer | None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            response = self.session.request(step.method, step.url, params=step.params, data=step.body,
                                            headers=step.headers, timeout=step.timeout)
            body = response.content
        except _NOT_RETRIED as err:
            return NoAnswer(f"{type(err).__name__}: {err}", retry=False, cause=err)
        except _NO_ANSWER as err:
            return NoAnswer(f"{type(err).__name__}: {err}", retry=True, cause=err)
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body)


Spillway = Client  # the name before 0.2.0
