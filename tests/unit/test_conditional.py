"""If-None-Match against an item's ETag (RFC 9110, 13.1.2): `*`, lists, weak comparison, malformed fields."""
import pytest

from webapp.http.conditional import etag, none_match


def test_the_etag_is_strong_and_made_of_the_version():
    assert etag(1767225600000000) == '"v1767225600000000"'


@pytest.mark.parametrize("header", [
    '"v7"', 'W/"v7"', "*", " * ", '"v1", "v7"', '"v1",W/"v7"', '"a,b", "v7"', ', "v7" ,', '"v1",, "v7"',
])
def test_if_none_match_matches(header):
    assert none_match(header, etag(7))


@pytest.mark.parametrize("header", [
    None, "", '"v8"', '"v70"', '"V7"', "v7", '"v7', 'v7"', '"v1" "v7"', '"v1"; "v7"', '**', 'W/ "v7"', 'w/"v7"',
])
def test_if_none_match_does_not_match(header):
    assert not none_match(header, etag(7))
