"""Only safe servers: a Redis that could lose or evict queued writes is refused at start, with one line.

Before, a REDIS_URL at a Redis with `appendonly no` or `allkeys-lru` was used as
it was, and accepted writes could vanish silently.
"""
import stat
from pathlib import Path

import pytest
import redis as redis_lib

from deploy.processes import wait_for
from tests.e2e.helpers import VAR


def exits_with(proc, timeout=30):
    """The exit status of a process that should refuse to start."""
    wait_for(lambda: not proc.alive(), timeout=timeout, message=f"{proc.name} to refuse to start")
    return proc.proc.returncode


@pytest.mark.parametrize("args, setting", [
    (("--appendonly", "no", "--maxmemory-policy", "volatile-ttl"), "appendonly is no"),
    (("--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"), "maxmemory-policy is allkeys-lru"),
])
def test_web_and_worker_refuse_an_unsafe_redis_with_one_line_naming_the_setting(
        start_web, start_worker, scratch_redis, args, setting):
    url, _ = scratch_redis(*args)
    web = start_web(wait=False, REDIS_URL=url)
    assert exits_with(web) != 0
    lines = [line for line in web.log().splitlines() if "refusing Redis" in line]
    assert len(lines) == 1 and setting in lines[0] and "REDIS_UNSAFE_OK" in lines[0]
    worker = start_worker(REDIS_URL=url)
    assert exits_with(worker) != 0 and setting in worker.log()


def test_redis_unsafe_ok_starts_anyway_and_says_so_at_every_start(start_web, scratch_redis):
    url, _ = scratch_redis("--appendonly", "no", "--maxmemory-policy", "allkeys-lru")
    web = start_web(REDIS_URL=url, REDIS_UNSAFE_OK="true")
    assert "REDIS_UNSAFE_OK=true: using Redis" in web.log() and "appendonly is no" in web.log()


def test_a_queue_bound_above_half_of_maxmemory_is_refused(start_web, scratch_redis):
    url, _ = scratch_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction", "--maxmemory", "100mb")
    web = start_web(wait=False, REDIS_URL=url, WRITE_QUEUE_HIGH_WATER_BYTES=80 * 1024 * 1024)
    assert exits_with(web) != 0 and "WRITE_QUEUE_HIGH_WATER_BYTES" in web.log()


def test_a_mysql_that_may_lose_commits_is_warned_about(stack, start_web):
    stack.mariadb.sql("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
    try:
        web = start_web()
        assert "innodb_flush_log_at_trx_commit=2" in web.log()
    finally:
        stack.mariadb.sql("SET GLOBAL innodb_flush_log_at_trx_commit = 1")


def test_the_private_redis_needs_its_password_and_its_files_are_private(stack):
    with pytest.raises(redis_lib.AuthenticationError):
        redis_lib.Redis(port=stack.redis.port).ping()
    assert redis_lib.Redis.from_url(stack.redis_url).ping()
    assert stat.S_IMODE(VAR.stat().st_mode) == 0o700
    for secret in (VAR / "redis.conf", VAR / "redis.password", VAR / "mariadb.password"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    command = Path(f"/proc/{stack.redis.pid}/cmdline").read_bytes()
    assert stack.redis.password.encode() not in command
