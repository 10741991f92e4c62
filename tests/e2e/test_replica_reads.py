"""Reads with a replica: both tries together stay within one read's bound; a replica's row is cached briefly."""
import socket
import threading
import time

import pytest

from tests.e2e.helpers import assert_error, get, item_url, put_row


@pytest.fixture()
def black_hole():
    """A port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def test_a_miss_with_the_replica_and_the_primary_hung_answers_within_one_bound(fresh, start_web, black_hole):
    hung = f"mysql://spillway:x@127.0.0.1:{black_hole}/spillway"
    web = start_web(MYSQL_REPLICA_URL=hung, MYSQL_URL=hung, DB_POOL_TIMEOUT=0.5, DB_QUERY_TIMEOUT=2)
    started = time.monotonic()
    assert_error(get(item_url(web.url, "missing")), 503, "database_unavailable")
    # Before: the replica's full wait, then the primary's (2 + 2 s), past the promised 0.5 + 2 s.
    assert time.monotonic() - started < 0.5 + 2 + 0.7


def test_a_row_read_from_the_replica_is_cached_for_replica_cache_ttl_only(fresh, db, rds, settings, start_web):
    web = start_web(MYSQL_REPLICA_URL=settings.mysql_url, REPLICA_CACHE_TTL=20)
    put_row(db, "k", {"v": 1})
    assert get(item_url(web.url, "k")).json()["data"] == {"v": 1}
    assert 0 < rds.pttl("spillway:item:k") <= 20_000  # before: up to CACHE_TTL (an hour) of a lagging row
