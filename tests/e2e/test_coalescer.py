"""The Redis coalescer against the real test Redis: each caller gets its own reply, broken connections heal."""
import gevent
import pytest
import redis

from webapp.server.coalesce import RedisCoalescer


@pytest.fixture()
def coalescer(rds, settings):
    pool = redis.ConnectionPool.from_url(settings.redis_url, socket_timeout=2)
    rds.hset("h", mapping={"a": 1, "b": 2})
    rds.set("s", "string")
    yield RedisCoalescer(pool)
    rds.delete("h", "s")


def test_coalesced_commands_get_their_own_replies_and_errors(coalescer):
    jobs = [gevent.spawn(coalescer.execute, "HMGET", "h", "a", "b", timeout=2),
            gevent.spawn(coalescer.execute, "HGET", "s", "x", timeout=2),  # WRONGTYPE: an error reply
            gevent.spawn(coalescer.execute, "HMGET", "h", "b", timeout=2)]
    gevent.joinall(jobs)
    assert jobs[0].value == [b"1", b"2"] and jobs[2].value == [b"2"]
    assert isinstance(jobs[1].exception, redis.ResponseError)


def test_a_connection_broken_by_a_redis_restart_is_replaced_transparently(coalescer, rds):
    assert coalescer.execute("HMGET", "h", "a", timeout=2) == [b"1"]
    rds.client_kill_filter(_type="normal", skipme=True)  # drop every other client connection
    assert coalescer.execute("HMGET", "h", "a", timeout=2) == [b"1"]
