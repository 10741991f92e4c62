"""Liveness and readiness: /livez, /readyz, and what they say when a server is down.

Readiness means "can serve": with MySQL alone down, cached reads answer and
writes queue, so /readyz stays 200 (degraded); only a Redis outage is 503. The
checks, which may carry a server's error text, are shown only with an API key.
"""
import signal

import pytest

from tests.e2e.helpers import HEADERS, assert_error, get, item_url, post_items


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
def test_livez(shared_web, path):
    assert get(shared_web.url + path).json() == {"status": "ok"}


def test_readyz_ok_shape(web):
    body = get(web.url + "/readyz", headers=HEADERS).json()
    assert body["checks"]["mysql"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["queue"] == {"depth": 0, "bytes": 0, "oldest_age_s": 0.0, "durability": "aof"}
    assert "alive" in body["checks"]["workers"]
    assert body["checks"]["drain"] == {"retrying": False}
    # No drain worker runs: the API still serves (writes queue), but degraded.
    assert body["status"] == "degraded"


def test_readyz_details_need_a_key(web):
    anonymous = get(web.url + "/readyz")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "degraded"}
    assert_error(get(web.url + "/readyz", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")


@pytest.mark.parametrize("how", ["stopped", "hung"])
def test_readyz_stays_200_while_mysql_alone_is_down_and_writes_still_queue(fresh, start_web, servers_restored, how):
    web = start_web()
    post_items(web, [("cached", {"v": 1})])
    get(item_url(web.url, "cached"))
    if how == "stopped":
        servers_restored.mariadb.stop()
    else:  # SIGSTOP: it accepts connections in the kernel and never answers
        servers_restored.mariadb.signal(signal.SIGSTOP)
    r = get(web.url + "/readyz")
    assert r.status_code == 200 and r.json() == {"status": "degraded", "down": ["mysql"]}
    assert get(web.url + "/readyz", headers=HEADERS).json()["checks"]["mysql"] != "ok"
    assert post_items(web, [("k", {"v": 2})]).status_code == 202
    assert get(item_url(web.url, "cached")).json()["data"] == {"v": 1}


def test_readyz_503_when_redis_is_down(fresh, start_web, servers_restored):
    web = start_web()
    servers_restored.redis.stop()
    r = get(web.url + "/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.json() == {"status": "unavailable", "down": ["redis"]}  # no host:port for anonymous callers
    assert get(web.url + "/livez").status_code == 200  # still alive, just not ready


def test_reads_with_redis_down_are_503_cache_unavailable(fresh, start_web, servers_restored):
    web = start_web()
    servers_restored.redis.stop()
    assert_error(get(item_url(web.url, "k")), 503, "cache_unavailable")
