"""Compact JSON out: characters kept, big integers exact, what cannot be JSON refused."""
import pytest

from webapp import jsonio


def test_compact_utf8_with_big_integers_exact():
    assert jsonio.dumps({"a": "\u00e9\U0001f600", "b": [1, 2.5]}) == '{"a":"\u00e9\U0001f600","b":[1,2.5]}'
    assert jsonio.dumps({"n": 123456789012345678901234567890}) == '{"n":123456789012345678901234567890}'


@pytest.mark.parametrize("value", [{"a": "\ud800"}, {"n": 2**70, "s": "\udc00"}])
def test_what_cannot_be_json_is_refused(value):
    with pytest.raises(jsonio.JSONError):
        jsonio.encode(value)
