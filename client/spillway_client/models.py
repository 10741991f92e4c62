"""What the API answers, as typed values: a write's Receipt, an Item, an Event, a WriteStatus.

Each is read from the server's JSON with `from_json`, which takes the fields it
knows and ignores any the server adds later. Times are aware datetimes (UTC).
"""
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def parse_time(value: Any) -> datetime.datetime:
    """An RFC 3339 time from the API ("2024-05-01T12:00:00.123456Z") as an aware datetime."""
    return datetime.datetime.fromisoformat(str(value))


def _maybe_time(value: Any) -> datetime.datetime | None:
    return None if value is None else parse_time(value)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A write's 202: its id, the records it queued, where its status is, and what the 202 promised.

    durability: the server's WRITE_DURABILITY (`aof`, `fsync` or `replica`: what a
    loss could take, see the server's docs/guarantees.md); idempotency_key: the key
    the request was sent with; request_id: the X-Request-ID of the answer.
    """

    write_id: str
    accepted: int
    status_url: str
    idempotency_key: str | None = None
    durability: str | None = None
    request_id: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any], idempotency_key: str | None = None,
                  request_id: str | None = None) -> "Receipt":
        """The receipt in a 202's body."""
        return cls(str(body["write_id"]), int(body["accepted"]), str(body["status_url"]), idempotency_key,
                   body.get("durability"), request_id)


@dataclass(frozen=True, slots=True)
class Item:
    """An item: its key, its data (a JSON object), its version and when that version was accepted."""

    key: str
    data: dict[str, Any]
    version: int
    updated_at: datetime.datetime

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Item":
        """An item from `GET /api/v1/items/<key>` or an entry of a list."""
        return cls(str(body["key"]), body["data"], int(body["version"]), parse_time(body["updated_at"]))


@dataclass(frozen=True, slots=True)
class Event:
    """A persisted event, as a list answers it."""

    seq: int
    event_id: str | None
    name: str
    level: str
    occurred_at: datetime.datetime
    received_at: datetime.datetime
    data: dict[str, Any] | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Event":
        """An entry of `GET /api/v1/events`."""
        return cls(int(body["seq"]), body.get("event_id"), str(body["name"]), str(body["level"]),
                   parse_time(body["occurred_at"]), parse_time(body["received_at"]), body.get("data"))


@dataclass(frozen=True, slots=True)
class WriteStatus:
    """Where a write stands (`GET /api/v1/writes/<id>`): status is `queued`, `persisted` or `dead`.

    accepted, persisted, dead: counts of its records; duplicate_of: for a retry the
    server caught in MySQL, the id of the write that was stored instead.
    """

    write_id: str
    status: str
    kind: str = ""
    accepted: int = 0
    persisted: int = 0
    dead: int = 0
    accepted_at: datetime.datetime | None = None
    persisted_at: datetime.datetime | None = None
    duplicate_of: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "WriteStatus":
        """A write's status as the server answers it."""
        return cls(str(body["write_id"]), str(body["status"]), str(body.get("kind", "")),
                   int(body.get("accepted") or 0), int(body.get("persisted") or 0), int(body.get("dead") or 0),
                   _maybe_time(body.get("accepted_at")), _maybe_time(body.get("persisted_at")),
                   body.get("duplicate_of"))
