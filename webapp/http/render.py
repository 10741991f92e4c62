"""What goes out, in JSON text: an item, an event, a write's 202 receipt and its status."""
from collections.abc import Mapping
from typing import Any

from webapp import clock, jsonio
from webapp.http.limits import status_url
from webapp.storage.queue import Receipt


def item_json(key: str, data: str, version: int, updated_us: int) -> str:
    """One item as JSON text, with `data` (already JSON) spliced in, not re-encoded."""
    return (f'{{"key":{jsonio.dumps(key)},"data":{data},"version":{version},'
            f'"updated_at":"{clock.to_rfc3339(updated_us)}"}}')


def event_json(seq: int, event_id: str | None, name: str, level: str, occurred_us: int, received_us: int,
               data: str | None) -> str:
    """One persisted event as JSON text (a row of storage/sql/events.py's page)."""
    return (f'{{"seq":{seq},"event_id":{jsonio.dumps(event_id)},"name":{jsonio.dumps(name)},'
            f'"level":"{level}","occurred_at":"{clock.to_rfc3339(occurred_us)}",'
            f'"received_at":"{clock.to_rfc3339(received_us)}","data":{data if data is not None else "null"}}}')


def within_bytes(parts: list[str], most: int) -> tuple[list[str], bool]:
    """(the leading parts whose text fits in `most` bytes, at least one; True if some were left out)."""
    size = 0
    for n, part in enumerate(parts):
        size += len(part.encode()) + 1
        if size > most and n > 0:
            return parts[:n], True
    return parts, False


def receipt_body(receipt: Receipt) -> dict[str, Any]:
    """The 202 body of an accepted write."""
    return {"write_id": receipt.write_id, "accepted": receipt.accepted, "status_url": status_url(receipt.write_id),
            "durability": receipt.durability}


def write_status(write_id: str, stored: Mapping[str, str]) -> dict[str, Any]:
    """GET /api/v1/writes/<id>: a receipt as stored in Redis, in the API's shape."""
    persisted_at = stored.get("persisted_at")
    return {
        "write_id": write_id,
        "kind": stored["kind"],
        "status": stored["status"],
        "accepted": int(stored["accepted"]),
        "persisted": int(stored["persisted"]),
        "dead": int(stored["dead"]),
        "accepted_at": clock.to_rfc3339(int(stored["accepted_at"])),
        "persisted_at": clock.to_rfc3339(int(persisted_at)) if persisted_at else None,
        **({"duplicate_of": stored["duplicate_of"]} if stored.get("duplicate_of") else {}),
    }
