"""The one shape of a write: records survive their Stream form exactly, and bad forms are refused."""
import pytest

from webapp.storage.records import Event, Item, kind_of, pack, unpack


def test_items_and_deletes_round_trip_through_the_stream_form():
    records = [Item("a", '{"x":"\\u0000 é 😀"}'), Item("a b/c", None), Item("😀", "{}")]
    assert kind_of(records) == "items"
    assert unpack("items", pack(records)) == records


def test_events_round_trip_with_and_without_their_optional_fields():
    records = [Event("login", "info", None, None, None), Event("e", "error", 1_800_000_000_123_456, "id-1", '{"n":1}')]
    assert kind_of(records) == "events"
    assert unpack("events", pack(records)) == records


@pytest.mark.parametrize("kind, blob", [
    ("items", b"only-a-key"),            # a field missing
    ("items", b"\x00{}"),                # no key
    ("events", b"name\x00info\x00\x00"),  # four fields of five
    ("events", b"n\x00info\x00soon\x00\x00"),  # occurred_us not a number
    ("widgets", b"k\x00{}"),             # an unknown kind
])
def test_a_malformed_stream_form_is_refused(kind, blob):
    with pytest.raises(ValueError):
        unpack(kind, blob)
