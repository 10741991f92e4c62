"""Start-up checks and set-up: the servers are safe to use, the MySQL connection budget, the schema.

gunicorn's master and every Celery worker run check_servers() before they start:
a Redis that could lose or evict queued writes is refused (unless
REDIS_UNSAFE_OK=true, logged at every start), a MySQL that may lose commits
is warned about, and the connections of all processes together must fit
MySQL's max_connections.
"""
import logging
from typing import Any
from urllib.parse import urlsplit

import pymysql
import redis

from webapp.config import ConfigError, Settings
from webapp.storage.dialect import Server
from webapp.storage.mysql import connect_kwargs
from webapp.storage.queue import IDEMPOTENCY_KEY_BYTES
from webapp.storage.redis_client import connect

log = logging.getLogger(__name__)



def connection_budget(settings: Settings) -> tuple[int, str]:
    """(needed, explanation): MySQL connections all processes of the stack may open."""
    web = settings.db_budget_web_hosts * settings.web_worker_count * settings.db_pool_size
    workers = settings.db_budget_worker_hosts * settings.worker_process_count  # one per drain process
    needed = web + workers + settings.db_reserved_connections
    text = (
        f"{settings.db_budget_web_hosts} web host(s) x {settings.web_worker_count} workers x "
        f"DB_POOL_SIZE {settings.db_pool_size} = {web}, plus {settings.db_budget_worker_hosts} "
        f"worker host(s) x {settings.worker_process_count} drain processes = {workers}, plus "
        f"DB_RESERVED_CONNECTIONS {settings.db_reserved_connections} = {needed}"
    )
    return needed, text


class BudgetError(ConfigError):
    """The stack could open more MySQL connections than the server allows."""


class UnsafeServer(ConfigError):
    """A server is set up so that accepted writes could be lost; the message names the setting."""


def check_servers(settings: Settings) -> None:
    """Every start-up check: Redis safety, MySQL durability, the connection budget. Raises ConfigError."""
    if settings.short_windows_ok and settings.receipt_ttl < 86400:
        log.warning("SHORT_WINDOWS_OK=true: receipts and Idempotency-Keys are kept %g s, under the day the API "
                    "promises; fit for a soak test, not for production", settings.receipt_ttl)
    check_redis(settings)
    check_broker(settings)
    check_mysql(settings)


def redis_problems(settings: Settings, client: redis.Redis, memory: dict[str, Any]) -> list[str]:
    """What makes this Redis unsafe for queued writes in the WRITE_DURABILITY mode, one sentence each.

    memory: the server's INFO memory.
    """
    persistence = client.info("persistence")
    problems = []
    mode = settings.write_durability
    if mode != "replica" and not int(persistence.get("aof_enabled", 0)):
        problems.append("appendonly is no, so a Redis restart loses every queued write: set appendonly yes")
    if mode == "fsync":
        try:
            fsync = client.config_get("appendfsync").get("appendfsync", "")
        except redis.ResponseError:  # CONFIG is disabled on some managed services
            fsync = "unknown (CONFIG GET is refused)"
        if fsync != "always":
            problems.append(f"appendfsync is {fsync}, but WRITE_DURABILITY=fsync needs appendfsync always")
    if mode == "replica":
        replicas = int(client.info("replication").get("connected_slaves", 0))
        if replicas < settings.write_min_replicas:
            log.warning("Redis has %d connected replicas and WRITE_MIN_REPLICAS is %d: writes answer 503 "
                        "replication_timeout until enough replicas are connected", replicas,
                        settings.write_min_replicas)
    policy = str(memory.get("maxmemory_policy", ""))
    if policy != "noeviction" and not policy.startswith("volatile-"):
        problems.append(f"maxmemory-policy is {policy}, which may evict queued writes: "
                        "use noeviction or a volatile-* policy")
    return problems


REDIS_MIN = (7, 0)  # Lua scripts with flags (#!lua flags=allow-oom), XAUTOCLAIM, ZMSCORE
REDIS_MIN_TEXT = "7.0"


def redis_too_old(version: str) -> bool:
    """True if a redis_version (INFO server) is older than REDIS_MIN."""
    numbers = tuple(int(n) for n in version.split(".")[:2] if n.isdigit())
    return numbers < REDIS_MIN


def check_redis(settings: Settings) -> None:
    """Refuse a Redis that could lose or evict queued writes; warn if it cannot be reached."""
    if not (settings.redis_url or settings.redis_sentinels):
        return
    target = settings.redis
    where = (f"Sentinel service {target.service}" if target.is_sentinel else _where(target.url))
    client = connect(settings, blocking=False, pool_size=2)
    try:
        version = str(client.info("server").get("redis_version", "0"))
        memory = client.info("memory")
        problems = redis_problems(settings, client, memory)
        limit = int(memory.get("maxmemory", 0))
    except redis.RedisError as err:
        log.warning("Redis safety not checked: %s unreachable (%s)", where, err)
        return
    finally:
        client.close()
    if redis_too_old(version):
        raise UnsafeServer(f"refusing Redis at {where}: Redis {version} is older than {REDIS_MIN_TEXT}, the oldest "
                           "supported (its scripts declare flags such as allow-oom; see docs/operations.md, "
                           "supported versions)")
    check_memory_budget(settings, limit, where)
    if not problems:
        return
    if settings.redis_unsafe_ok:
        for problem in problems:
            log.warning("REDIS_UNSAFE_OK=true: using Redis at %s although its %s", where, problem)
        return
    raise UnsafeServer(f"refusing Redis at {where}: its {'; its '.join(problems)} "
                       "(or set REDIS_UNSAFE_OK=true to use it anyway)")


def memory_budget(settings: Settings, limit: int) -> dict[str, int]:
    """What Spillway may hold in a Redis with `limit` bytes of maxmemory (0: none), by part.

    queue: queued writes, their pending cache entries and receipts, bounded by
    WRITE_QUEUE_HIGH_WATER_BYTES (backpressure counts it); idempotency: the
    Idempotency-Keys of the last IDEMPOTENCY_CACHE_S, IDEMPOTENCY_KEY_BYTES each,
    at most IDEMPOTENCY_CACHE_BYTES (a quarter of maxmemory by default); the rest
    is for the cache, which Redis may evict.
    """
    idempotency = settings.idempotency_cache_bytes or (limit // 4 if limit else 256 * 1024**2)
    return {"queue": settings.write_queue_high_water_bytes, "idempotency": idempotency, "maxmemory": limit}


def check_memory_budget(settings: Settings, limit: int, where: str) -> None:
    """Refuse bounds that add up to more than three quarters of maxmemory; log the budget at every start."""
    budget = memory_budget(settings, limit)
    log.info("Redis budget at %s: queued writes <= %d bytes (WRITE_QUEUE_HIGH_WATER_BYTES, receipts included); "
             "Idempotency-Keys %d bytes x writes/s x %g s (IDEMPOTENCY_CACHE_S), at most %d bytes; maxmemory %d",
             where, budget["queue"], IDEMPOTENCY_KEY_BYTES, settings.idempotency_cache_s, budget["idempotency"],
             limit)
    if limit and budget["queue"] + budget["idempotency"] > limit * 3 // 4:
        raise UnsafeServer(
            f"WRITE_QUEUE_HIGH_WATER_BYTES {budget['queue']} and the Idempotency-Keys' budget "
            f"{budget['idempotency']} (IDEMPOTENCY_CACHE_BYTES; 0: a quarter of maxmemory) add up to more than "
            f"three quarters of the maxmemory of Redis at {where} ({limit}), so what Spillway must keep could fill "
            "it: lower them or raise maxmemory")


def check_broker(settings: Settings) -> None:
    """Warn when Celery's messages share the write queue's Redis; refuse a broker that may evict them.

    A Redis the queue has filled refuses kombu's writes, so no drain task could be
    delivered to empty it; a broker of its own (CELERY_BROKER_URL) never fills.
    """
    if settings.broker_shares_queue_redis:
        log.warning("CELERY_BROKER_URL is unset or the write queue's Redis: if that Redis fills up, Celery "
                    "cannot deliver the drain tasks that would empty it. Give Celery a small Redis of its own "
                    "(CELERY_BROKER_URL; `make run` starts one)")
        return
    target = settings.broker
    where = f"Sentinel service {target.service}" if target.is_sentinel else _where(target.url)
    client = connect(settings, blocking=False, pool_size=2, target=target)
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy", ""))
    except redis.RedisError as err:  # CONFIG refused (managed services), or not reachable yet
        log.warning("Celery's broker not checked: %s (%s)", where, err)
        return
    finally:
        client.close()
    if policy.startswith("allkeys-") and not settings.redis_unsafe_ok:
        raise UnsafeServer(f"refusing Celery's broker at {where}: its maxmemory-policy is {policy}, which may "
                           "evict task messages and queue bindings: use noeviction (or set REDIS_UNSAFE_OK=true)")


def check_mysql(settings: Settings) -> None:
    """Warn when MySQL may lose committed batches; refuse a version too old (UnsafeServer) or a connection budget
    it cannot hold (BudgetError).

    One connection reads the settings and the version. An unreachable MySQL is logged, not fatal:
    the service still serves cached reads and queues writes.
    """
    if not settings.mysql_url:
        return
    try:
        con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 5))
    except pymysql.err.Error as err:
        log.warning("MySQL durability and connection budget not checked: unreachable (%s)", err)
        return
    try:
        with con.cursor() as cur:
            cur.execute("SELECT @@innodb_flush_log_at_trx_commit, @@max_connections, VERSION()")
            flush_at_commit, max_connections, version = cur.fetchone()
            flush_at_commit, max_connections = int(flush_at_commit), int(max_connections)
    finally:
        con.close()
    unsupported = Server.from_version(version).problem()
    if unsupported:
        raise UnsafeServer(f"refusing MySQL at {_where(settings.mysql_url)}: {unsupported}")
    if flush_at_commit != 1:
        # the drain acknowledges after COMMIT, so a commit MySQL loses is a write lost
        log.warning("MySQL has innodb_flush_log_at_trx_commit=%d: a crash of its host can lose up to a "
                    "second of committed batches, which the drain has already acknowledged; set it to 1",
                    flush_at_commit)
    check_connection_budget(settings, max_connections)


def _where(url: str) -> str:
    """host:port of a server URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")


def check_connection_budget(settings: Settings, max_connections: int) -> None:
    """Raise BudgetError when the stack's connection budget does not fit MySQL's max_connections."""
    needed, text = connection_budget(settings)
    if needed > max_connections:
        raise BudgetError(
            f"MySQL connection budget exceeded: {text}, but the server's max_connections "
            f"is {max_connections}. Lower DB_POOL_SIZE, WEB_WORKERS or WORKER_CONCURRENCY, or raise "
            "max_connections on the server."
        )
    log.info("MySQL connection budget: %s <= max_connections %d", text, max_connections)


def apply_schema(settings: Settings) -> list[str]:
    """Bring the schema up to date (webapp/storage/migrate.py); return the migrations applied."""
    from webapp.storage.migrate import migrate

    return migrate(settings)
