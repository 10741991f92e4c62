"""Fuzzing the one schema: any bytes give records or a 400/422, never another exception; accepted data is exact."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.http import decode
from webapp.http.errors import InvalidJSON, ValidationFailed

# JSON values with the awkward parts: big integers, floats near the edges, escapes, nesting.
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**40),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=12)
keys = st.text(min_size=0, max_size=8) | st.sampled_from(["a\tb", "é", "x" * 256, "😀", "a\x85b", "k", "k\n"])


def outcome(decoder, body):
    """The records, or the error class: anything else (a 500) fails the test."""
    try:
        return decoder(body)
    except (InvalidJSON, ValidationFailed) as err:
        return type(err)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.builds(lambda b, cut, junk: b[:cut] + junk + b[cut:],
                                            st.just(b'{"items":[{"key":"k","data":{"s":"v","n":[1,2]}}]}'),
                                            st.integers(0, 48), st.binary(min_size=1, max_size=4)))
def test_any_bytes_give_records_or_a_4xx(body):
    for decoder in (decode.items, decode.events):
        outcome(decoder, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"key": keys, "data": values}), min_size=0, max_size=4),
       st.sampled_from([None, " ", "\n  "]), st.booleans())
def test_accepted_items_keep_their_keys_and_data_exactly(items, indent, ascii_only):
    body = json.dumps({"items": items}, indent=indent, ensure_ascii=ascii_only).encode()
    got = outcome(decode.items, body)
    if isinstance(got, list):
        assert [r.key for r in got] == [i["key"] for i in items]
        assert [json.loads(r.data) for r in got] == [i["data"] for i in items]
        assert all(isinstance(i["data"], dict) and "\n" not in i["key"] for i in items)
    else:
        assert got is ValidationFailed  # well-formed JSON is never a 400


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"name": keys}, optional={
    "level": st.sampled_from(["debug", "info", "fatal", "ERROR"]), "event_id": keys,
    "occurred_at": st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02", "1969-12-31T23:59:59Z",
                                    "2026-01-02T03:04:05.123+01:00"]),
    "data": values}), min_size=0, max_size=4))
def test_accepted_events_keep_their_fields(events):
    got = outcome(decode.events, json.dumps({"events": events}).encode())
    if isinstance(got, list):
        assert [(e.name, e.event_id) for e in got] == [(e["name"], e.get("event_id")) for e in events]
        assert [None if e.data is None else json.loads(e.data) for e in got] == [e.get("data") for e in events]
