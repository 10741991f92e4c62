"""Strict JSON: what request bodies may not contain, and what survives exactly."""
import pytest

from webapp import jsonio


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}', b'"\\ud800"',
    b'"\xff"', b"{", b"", b"[" * 5000 + b"]" * 5000, b'{"a":1} x',
])
def test_strict_json_rejects(raw):
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(raw)


def test_strict_json_keeps_big_integers_and_pairs_surrogates():
    assert jsonio.loads(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890
    assert jsonio.loads(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert jsonio.dumps({"a": "\u00e9\U0001f600", "b": [1, 2.5]}) == '{"a":"\u00e9\U0001f600","b":[1,2.5]}'
