"""MySQL helpers that need no server: the breaker and the prefix range of a key list."""
import time

import pytest

from webapp.storage.errors import DatabaseUnavailable
from webapp.storage.mysql import Breaker
from webapp.storage.sql.items import prefix_end


def test_prefix_end_bounds_exactly_the_keys_with_the_prefix():
    assert prefix_end("") is None
    assert prefix_end("ab") == "ac"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"
    p = "p\u00e9"
    inside = [p, p + "\x00", p + "\U0001f600", p + "\U0010ffff" * 3]
    outside = ["p", "p\u00ea", "p\u00e8\U0010ffff", "q"]
    assert all(p <= k < prefix_end(p) for k in inside)
    assert not any(p <= k < prefix_end(p) for k in outside)


def test_breaker_fails_fast_after_repeated_failures_then_lets_one_probe_through():
    b = Breaker(cooldown=0.2, threshold=3)
    for _ in range(3):
        b.check()
        b.failed()
    with pytest.raises(DatabaseUnavailable):
        b.check()
    time.sleep(0.25)
    b.check()  # the probe
    with pytest.raises(DatabaseUnavailable):
        b.check()  # others still fail fast while it runs
    b.succeeded()
    b.check()


def test_breaker_gauge_is_1_from_the_opening_until_a_success():
    from prometheus_client import REGISTRY

    def gauge():
        return REGISTRY.get_sample_value("spillway_db_breaker_open", {"database": "unit-test"})

    b = Breaker(cooldown=0.01, threshold=3, database="unit-test")
    assert gauge() == 0
    b.failed()
    b.failed()
    assert gauge() == 0
    b.failed()
    assert gauge() == 1
    time.sleep(0.02)
    b.check()  # the probe ...
    b.failed()  # ... fails: still open
    assert gauge() == 1
    b.succeeded()
    assert gauge() == 0
