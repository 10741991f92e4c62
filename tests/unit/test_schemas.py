"""The one schema (webapp/http/schemas.py): every bad record named by its path, limits in code points and bytes."""
import json

import pytest

from webapp import clock
from webapp.http import decode, limits, paths, schemas
from webapp.http.errors import InvalidJSON, ValidationFailed


def raw(value):
    return json.dumps(value, ensure_ascii=False).encode()


def details(decode, value):
    with pytest.raises(ValidationFailed) as err:
        decode(raw(value))
    return {d["path"]: d["message"] for d in err.value.details}


def test_item_batch_validation_names_each_bad_record():
    bad = details(decode.items, {"items": [
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
        {"key": "newline at the end\n", "data": {}},
    ]})
    assert set(bad) == {"items[1].key", "items[2].key", "items[3].key", "items[4].key", "items[5].data",
                        "items[6].extra", "items[7].key", "items[8].data", "items[9].data", "items[10].key"}
    assert "control characters" in bad["items[3].key"] and "control characters" in bad["items[10].key"]
    assert "65536" in bad["items[8].data"] and "32 levels" in bad["items[9].data"]
    assert bad["items[6].extra"] == "is not a known field" and bad["items[7].key"] == "is required"


def test_item_limits_count_code_points_and_utf8_bytes():
    # {"s":"..."} is 8 bytes plus 2 bytes per e-acute: exactly 65536 bytes at 32764 of them.
    (item,) = decode.items(raw({"items": [{"key": "\U0001f600" * 255, "data": {"s": "\u00e9" * 32764}}]}))
    assert item.key == "\U0001f600" * 255 and json.loads(item.data) == {"s": "\u00e9" * 32764}
    assert "items[0].data" in details(decode.items, {"items": [{"key": "k", "data": {"s": "\u00e9" * 32765}}]})


def test_white_space_does_not_count_against_the_data_limit_and_data_is_kept_as_sent():
    padded = b'{"items":[{"key":"k","data":{"s": "' + b"x" * 65520 + b'"   ' + b" " * 100 + b"}}]}"
    (item,) = decode.items(padded)
    assert len(item.data.encode()) <= limits.MAX_ITEM_DATA_BYTES  # the compact form, within the limit
    body = b'{"items":[{"key":"k","data":{"n": 123456789012345678901234567890, "s": "caf\\u00e9"}}]}'
    assert decode.items(body)[0].data == '{"n": 123456789012345678901234567890, "s": "caf\\u00e9"}'


def test_batch_size_bounds():
    assert "items" in details(decode.items, {"items": []})
    assert "items" in details(decode.items, {"items": [{"key": "k", "data": {}}] * 1001})
    assert len(decode.items(raw({"items": [{"key": "k", "data": {}}] * 1000}))) == 1000


def test_event_validation():
    (e,) = decode.events(raw({"events": [{"name": "login", "occurred_at": "2026-01-02T03:04:05.5+01:00"}]}))
    assert e.level == "info" and e.occurred_us == clock.parse_rfc3339("2026-01-02T02:04:05.5Z") and e.data is None
    bad = details(decode.events, {"events": [
        {"name": "x" * 129}, {"name": "a", "level": "fatal"}, {"name": "a", "occurred_at": "yesterday"},
        {"name": "a", "event_id": ""}, {"name": "a", "data": {"s": "x" * 17000}}, {"name": "a", "when": 1},
        {"name": "a\u0085b"},
    ]})
    assert set(bad) == {"events[0].name", "events[1].level", "events[2].occurred_at", "events[3].event_id",
                        "events[4].data", "events[5].when", "events[6].name"}


@pytest.mark.parametrize("body", [
    b"{", b"", b'{"items": [{"key": "a", "data": {"n": NaN}}]}', b'{"items": "\xff"}',
    b'{"items":[{"key":"k","data":{"s":"caf\xe9"}}]}',  # Latin-1, not UTF-8, inside data (was a 500)
    b'{"items":[{"key":"k","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",  # 100,000 deep (was a 500)
    b'{"items":[{"key":"k","data":{"a":' + b"[" * 3000 + b"]" * 3000 + b"}}]}",
    b'{"items":[{"key":"k","data":{"n":' + b"7" * 5000 + b"}}]}",  # an integer of 5,000 digits
    b'{"items":[{"key":"a","data":{"x":1e400}}]}', b'{"items":[{"key":"\\ud800","data":{}}]}',
    b'{"items": [{"key": "a", "data": {}}], "more": tru}',  # a bad token after a good record
])
def test_bytes_that_are_not_strict_json_are_400_on_both_bodies(body):
    for decoder in (decode.items, decode.events):
        with pytest.raises(InvalidJSON):
            decoder(body)


@pytest.mark.parametrize("pairs, path", [
    ([("limit", ["0"])], "limit"), ([("limit", ["ten"])], "limit"), ([("limit", ["1.5"])], "limit"),
    ([("color", ["red"])], "color"), ([("limit", ["5", "6"])], "limit"), ([("prefix", ["x" * 256])], "prefix"),
])
def test_query_strings_are_converted_from_text_and_each_problem_is_named(pairs, path):
    with pytest.raises(ValidationFailed) as err:
        decode.query(schemas.ItemListQuery, pairs)
    assert [d["path"] for d in err.value.details] == [path]
    q = decode.query(schemas.ItemListQuery, [("limit", ["7"]), ("prefix", ["a"])])
    assert (q.limit, q.prefix, q.cursor) == (7, "a", None)
    assert decode.query(schemas.DeadLetterQuery, [("all", ["true"])]).all is True


def test_cursor_round_trip_and_rejection():
    assert paths.decode_cursor(paths.encode_cursor({"k": "a\u00e9"}), lambda p: "k" in p) == {"k": "a\u00e9"}
    for bad in ("", "!!!", paths.encode_cursor([1]), "e30"):
        with pytest.raises(ValidationFailed):
            paths.decode_cursor(bad, lambda p: isinstance(p, dict) and "k" in p)


def test_multi_get_keys_are_checked_as_path_keys_are_and_answered_once():
    assert decode.item_keys(raw({"keys": ["b", "a", "b", "\U0001f600" * 255]})) == ["b", "a", "\U0001f600" * 255]
    bad = details(decode.item_keys, {"keys": ["ok", "", "x" * 256, "tab\there", "c1\u0085"]})
    assert set(bad) == {"keys[1]"}  # the type's checks first, one error at a time
    bad = details(decode.item_keys, {"keys": ["ok", "tab\there", "fine", "c1\u0085"]})
    assert bad == {"keys[1]": schemas.CONTROL_MESSAGE, "keys[3]": schemas.CONTROL_MESSAGE}
    assert details(decode.item_keys, {"keys": ["k"] * (limits.MAX_MULTI_GET + 1)}).keys() == {"keys"}
    assert details(decode.item_keys, {"keys": []}).keys() == {"keys"}
    assert len(decode.item_keys(raw({"keys": [f"k{i}" for i in range(limits.MAX_MULTI_GET)]}))) == 100
