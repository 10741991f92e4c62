"""Liveness and readiness: /healthz, /readyz, and what they say when a server is down."""
import pytest

from tests.e2e.helpers import get


def test_healthz(shared_web):
    assert get(shared_web.url + "/healthz").json() == {"status": "ok"}


def test_readyz_ok_shape(web):
    body = get(web.url + "/readyz").json()
    assert body["checks"]["mysql"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["queue"] == {"depth": 0, "bytes": 0, "oldest_age_s": 0.0, "durability": "aof"}
    assert "alive" in body["checks"]["workers"]
    assert body["checks"]["drain"] == {"retrying": False}
    # No drain worker runs: the API still serves (writes queue), but degraded.
    assert body["status"] == "degraded"


@pytest.mark.parametrize("name", ["mariadb", "redis"])
def test_readyz_503_names_what_is_down(fresh, start_web, servers_restored, name):
    web = start_web()
    getattr(servers_restored, name).stop()
    r = get(web.url + "/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.json()["down"] == ["mysql" if name == "mariadb" else "redis"]
    assert get(web.url + "/healthz").status_code == 200  # still alive, just not ready


def test_reads_with_redis_down_are_503_cache_unavailable(fresh, start_web, servers_restored):
    from tests.e2e.helpers import assert_error, item_url

    web = start_web()
    servers_restored.redis.stop()
    assert_error(get(item_url(web.url, "k")), 503, "cache_unavailable")
