"""The fast path's decoders never accept what the full check (pydantic) refuses, and keep data as sent."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.api import bodies
from webapp.api.schemas import EventsIn, ItemsIn, parse
from webapp.errors import ValidationFailed
from webapp.jsonio import JSONError, loads

# JSON values with the awkward parts: big integers, floats near the edges, escapes, nesting.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**40),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=12)
keys = st.text(min_size=0, max_size=8) | st.sampled_from(["a\tb", "é", "x" * 256, "😀", "a\x85b", "k"])


def full(model, raw):
    """What the Flask view's path accepts: None if it refuses."""
    try:
        return parse(model, loads(raw))
    except (ValidationFailed, JSONError):
        return None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"key": keys, "data": values}), min_size=0, max_size=4),
       st.booleans(), st.sampled_from([None, " ", "\n  "]))
def test_the_fast_item_decoder_accepts_only_what_the_full_check_accepts(items, extra_field, indent):
    body = {"items": items}
    if extra_field and items:
        body["items"][0] = {**items[0], "ttl": 5}
    raw = json.dumps(body, indent=indent, ensure_ascii=False).encode()
    fast = bodies.items(raw)
    if fast is not None:
        slow = full(ItemsIn, raw)
        assert slow is not None, raw
        assert [r.key for r in fast] == [i.key for i in slow.items]
        assert [json.loads(r.data) for r in fast] == [json.loads(i.data) for i in slow.items]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"name": keys}, optional={
    "level": st.sampled_from(["debug", "info", "fatal", "ERROR"]), "event_id": keys,
    "occurred_at": st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02", "1969-12-31T23:59:59Z",
                                    "2026-01-02T03:04:05.123+01:00"]),
    "data": values}), min_size=0, max_size=4))
def test_the_fast_event_decoder_accepts_only_what_the_full_check_accepts(events):
    raw = json.dumps({"events": events}).encode()
    fast = bodies.events(raw)
    if fast is not None:
        slow = full(EventsIn, raw)
        assert slow is not None, raw
        assert [(e.name, e.level, e.occurred_us, e.event_id) for e in fast] == [
            (e.name, e.level, e.occurred_at, e.event_id) for e in slow.events]


@pytest.mark.parametrize("raw", [
    b'{"items":[{"key":"a","data":{"x":1e400}}]}',            # overflows to infinity
    b'{"items":[{"key":"a","data":{"x":NaN}}]}',
    b'{"items":[{"key":"a","data":{"x":"\\ud800"}}]}',        # a lone surrogate
    b'{"items":[{"key":"\\ud800","data":{}}]}',
    b'{"items":[{"key":"a","data":' + b'{"a":' * 40 + b'1' + b'}' * 40 + b'}]}',  # 40 levels deep
    b'{"items":[{"key":"a","data":[]}]}',
    b'{"items":[{"key":"a\\u007fb","data":{}}]}',
    b'{"items":[]}',
    b'{"items":[{"key":"a","data":{}}],"more":1}',
])
def test_bodies_near_the_edges_go_to_the_full_check(raw):
    assert bodies.items(raw) is None


def test_data_is_kept_as_it_arrived():
    raw = b'{"items":[{"key":"k","data":{"n": 123456789012345678901234567890, "s": "caf\\u00e9"}}]}'
    (record,) = bodies.items(raw)
    assert record.data == '{"n": 123456789012345678901234567890, "s": "caf\\u00e9"}'
