"""AsyncClient: the API's calls over httpx, for asyncio; the same calls, retries and errors as Client."""
import asyncio
import ssl
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any, TypeVar

import httpx

from spillway_client import calls, chunks
from spillway_client.calls import Answer, AnyReceipt, Emit, NoAnswer, Send, Sleep
from spillway_client.models import Event, Item, Receipt, WriteStatus

T = TypeVar("T")

# Failures no retry can fix; every other httpx.TransportError (refused, reset, closed
# mid-request, a timeout, a body cut short) is retried.
_NOT_RETRIED = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class AsyncClient:
    """An asyncio client of one Spillway server: Client's calls, awaited.

    url, key, timeout, deadline, max_records and max_body_bytes as for Client (url and key
    default to SPILLWAY_URL and SPILLWAY_API_KEY). http_client: an httpx.AsyncClient to use
    (its connection pool, proxies, TLS settings); by default the client makes its own and
    aclose() closes it. One AsyncClient may serve many tasks at once.

        async with AsyncClient() as api:
            receipts = await api.put_items([("tt0000042", {"title": "Heat"})])
            await api.wait_persisted(receipts)
            async for item in api.list_items(prefix="tt"):
                ...
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 10,
                 deadline: float = 60, http_client: httpx.AsyncClient | None = None,
                 max_records: int = chunks.MAX_RECORDS, max_body_bytes: int = chunks.MAX_BODY_BYTES) -> None:
        self._calls = calls.Calls(url, key, timeout, deadline, max_records, max_body_bytes,
                                  f"python-httpx/{httpx.__version__}")
        self.url, self.key = self._calls.url, self._calls.key
        self._own_client = http_client is None
        self.http_client = http_client if http_client is not None else httpx.AsyncClient()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"  # never the key

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's own httpx client (one passed in is left to its owner)."""
        if self._own_client:
            await self.http_client.aclose()

    # --- the calls (docs/client.md) ------------------------------------------------------

    async def put_items(self, items: Iterable[Mapping[str, Any] | tuple[str, Any]]) -> list[Receipt]:
        """Upsert items in chunks, each with an Idempotency-Key of its own; one receipt per request."""
        return await self._run(self._calls.write("/api/v1/items", "items", (chunks.item_record(i) for i in items)))

    async def post_events(self, events: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Append events in chunks, as put_items."""
        return await self._run(self._calls.write("/api/v1/events", "events",
                                                 (chunks.event_record(e) for e in events)))

    async def delete(self, key: str) -> Receipt:
        """Delete an item (a versioned tombstone; a missing key is fine); its receipt."""
        return await self._run(self._calls.delete(key))

    async def get(self, key: str) -> Item | None:
        """An item, or None if there is none."""
        return await self._run(self._calls.get(key))

    def list_items(self, prefix: str = "", page_size: int = 100) -> AsyncIterator[Item]:
        """Persisted items in key order (`async for`), page by page as they are read."""
        return self._iterate(self._calls.list_items(prefix, page_size))

    def list_events(self, name: str | None = None, level: str | None = None, since: Any = None,
                    until: Any = None, page_size: int = 100) -> AsyncIterator[Event]:
        """Persisted events, newest first (`async for`)."""
        return self._iterate(self._calls.list_events(name, level, since, until, page_size))

    async def write_status(self, receipt: AnyReceipt) -> WriteStatus:
        """A write's status: queued, persisted or dead, with its counts."""
        return await self._run(self._calls.write_status(receipt))

    async def wait_persisted(self, receipts: Iterable[AnyReceipt], timeout: float = 60) -> list[WriteStatus]:
        """Poll until every write is persisted; their statuses, in order (WriteDead, WaitTimeout as Client's)."""
        return await self._run(self._calls.wait_persisted(receipts, timeout))

    # --- running the calls with httpx ----------------------------------------------------------

    async def _run(self, steps: Generator[Send | Sleep, Answer | NoAnswer | None, T]) -> T:
        reply: Answer | NoAnswer | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            reply = await self._do(step)

    async def _iterate(self, steps: calls.ListStep) -> AsyncIterator[Any]:
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
                reply = await self._do(step)

    async def _do(self, step: Send | Sleep) -> Answer | NoAnswer | None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            response = await self.http_client.request(step.method, step.url, params=step.params,
                                                      content=step.body, headers=step.headers, timeout=step.timeout)
        except _NOT_RETRIED as err:
            return NoAnswer(f"{type(err).__name__}: {err}", retry=False, cause=err)
        except httpx.TransportError as err:
            return NoAnswer(f"{type(err).__name__}: {err}", retry=not _tls_failure(err), cause=err)
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)


def _tls_failure(err: BaseException) -> bool:
    """True if a TLS error (a certificate that does not verify) is behind `err`: a retry cannot fix it."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
