"""Request validation: every bad record named by its path, limits in code points and bytes, cursors."""
import json

import pytest

from webapp import clock
from webapp.api.schemas import EventsIn, ItemsIn, decode_cursor, encode_cursor, parse
from webapp.errors import ValidationFailed


def details(model, value):
    with pytest.raises(ValidationFailed) as err:
        parse(model, value)
    return {d["path"]: d["message"] for d in err.value.details}


def test_item_batch_validation_names_each_bad_record():
    bad = details(ItemsIn, {"items": [
        {"key": "ok", "data": {}},
        {"key": "", "data": {}},
        {"key": "x" * 256, "data": {}},
        {"key": "tab\there", "data": {}},
        {"key": 5, "data": {}},
        {"key": "k", "data": []},
        {"key": "k", "data": {}, "extra": 1},
        {"data": {}},
        {"key": "k", "data": {"s": "x" * 70000}},
        {"key": "k", "data": json.loads('{"a":' * 40 + "1" + "}" * 40)},
    ]})
    assert set(bad) == {"items[1].key", "items[2].key", "items[3].key", "items[4].key", "items[5].data",
                        "items[6].extra", "items[7].key", "items[8].data", "items[9].data"}
    assert "control characters" in bad["items[3].key"]
    assert "65536" in bad["items[8].data"] and "32 levels" in bad["items[9].data"]


def test_item_limits_count_code_points_and_utf8_bytes():
    # {"s":"..."} is 8 bytes plus 2 bytes per e-acute: exactly 65536 bytes at 32764 of them.
    ok = parse(ItemsIn, {"items": [{"key": "\U0001f600" * 255, "data": {"s": "\u00e9" * 32764}}]})
    assert ok.items[0].data == json.dumps({"s": "\u00e9" * 32764}, ensure_ascii=False, separators=(",", ":"))
    assert "items[0].data" in details(ItemsIn, {"items": [{"key": "k", "data": {"s": "\u00e9" * 32765}}]})


def test_batch_size_bounds():
    assert "items" in details(ItemsIn, {"items": []})
    assert "items" in details(ItemsIn, {"items": [{"key": "k", "data": {}}] * 1001})
    assert len(parse(ItemsIn, {"items": [{"key": "k", "data": {}}] * 1000}).items) == 1000


def test_event_validation():
    e = parse(EventsIn, {"events": [{"name": "login", "occurred_at": "2026-01-02T03:04:05.5+01:00"}]}).events[0]
    assert e.level == "info" and e.occurred_at == clock.parse_rfc3339("2026-01-02T02:04:05.5Z")
    bad = details(EventsIn, {"events": [
        {"name": "x" * 129}, {"name": "a", "level": "fatal"}, {"name": "a", "occurred_at": "yesterday"},
        {"name": "a", "event_id": ""}, {"name": "a", "data": {"s": "x" * 17000}}, {"name": "a", "when": 1},
    ]})
    assert set(bad) == {"events[0].name", "events[1].level", "events[2].occurred_at", "events[3].event_id",
                        "events[4].data", "events[5].when"}


def test_cursor_round_trip_and_rejection():
    assert decode_cursor(encode_cursor({"k": "a\u00e9"}), lambda p: "k" in p) == {"k": "a\u00e9"}
    for bad in ("", "!!!", encode_cursor([1]), "e30"):
        with pytest.raises(ValidationFailed):
            decode_cursor(bad, lambda p: isinstance(p, dict) and "k" in p)
