"""Time at the edges: RFC 3339 in, microseconds inside."""
import pytest

from webapp import clock


def test_rfc3339_round_trip():
    us = clock.parse_rfc3339("2026-11-23T06:35:00.123456Z")
    assert clock.to_rfc3339(us) == "2026-11-23T06:35:00.123456Z"
    assert clock.parse_rfc3339("2026-11-23T07:35:00.123456+01:00") == us
    for bad in ("2026-11-23", "2026-11-23T06:35:00", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValueError):
            clock.parse_rfc3339(bad)
