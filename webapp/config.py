"""Settings: the one reader of os.environ (and of .env, through python-dotenv).

Flask, gunicorn_conf.py, celeryconfig.py, the drain, `spillway` and the bootstrap all call
load_settings(), so one variable means the same thing to every process.
Every setting is declared once below with its default and a line of doc; the
docs/configuration.md's table is checked against this list by a test.
"""
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
# Where .env and var/ are: the checkout when the code runs from one (`make run`), else the
# current directory (a service installed with `pip install .`, where ROOT is site-packages).
HOME = ROOT if (ROOT / "pyproject.toml").is_file() and (ROOT / "webapp").is_dir() else Path.cwd()


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what to do."""


def setting(env: str, default: Any, doc: str, required: bool = False, secret: bool = False) -> Any:
    """Declare a dataclass field read from environment variable `env` (a secret may also come from `<env>_FILE`)."""
    return field(default=default, metadata={"env": env, "doc": doc, "required": required, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every tunable of Spillway, read from the environment."""

    # --- storage -----------------------------------------------------------
    mysql_url: str = setting("MYSQL_URL", "", "MySQL/MariaDB primary, `mysql://user:pass@host:port/db`; unset: `make run` starts a private server", True, secret=True)
    mysql_replica_url: str = setting("MYSQL_REPLICA_URL", "", "optional read replica for cache misses and lists; falls back to the primary", secret=True)
    mysql_tls: str = setting("MYSQL_TLS", "auto", "`off`, `preferred`, `required` or `auto` (off for loopback servers, preferred otherwise)")
    mysql_tls_ca: str = setting("MYSQL_TLS_CA", "", "CA bundle that verifies the server certificate when MYSQL_TLS=required")
    redis_url: str = setting("REDIS_URL", "", "Redis for the write queue, cache and receipts, `redis://:password@host:port/db` or `redis+sentinel://:password@host:port,host:port/service/db`; unset: `make run` starts a private server", True, secret=True)
    redis_sentinels: str = setting("REDIS_SENTINELS", "", "`host:port,...` of Redis Sentinels: the primary is found through them and a failover followed (REDIS_URL then gives only the password and db)")
    redis_sentinel_service: str = setting("REDIS_SENTINEL_SERVICE", "spillway", "the primary's name in Sentinel (`sentinel monitor <name> ...`)")
    redis_sentinel_password: str = setting("REDIS_SENTINEL_PASSWORD", "", "password of the Sentinels themselves; empty: the same as Redis's", secret=True)
    celery_broker_url: str = setting("CELERY_BROKER_URL", "", "Redis for Celery's task messages (drain tasks, redrives, Flower's events), `redis://` or `redis+sentinel://` like REDIS_URL: a small Redis of its own, so a write queue that fills its Redis never stops the tasks that drain it; unset: `make run` starts a private one, elsewhere REDIS_URL is used (and a warning logged)", secret=True)
    redis_timeout: float = setting("REDIS_TIMEOUT", 2.0, "seconds a request waits for Redis before answering 503")
    redis_pool_size: int = setting("REDIS_POOL_SIZE", 64, "Redis connections per web worker process")
    redis_unsafe_ok: bool = setting("REDIS_UNSAFE_OK", False, "`true`: start even if Redis could lose or evict queued writes (no AOF, an `allkeys-*` eviction policy); logged at every start")
    # --- MySQL connection pool ----------------------------------------------
    db_pool_size: int = setting("DB_POOL_SIZE", 8, "MySQL connections per web worker process (the pool's bound)")
    db_pool_timeout: float = setting("DB_POOL_TIMEOUT", 2.0, "seconds a request waits for a pooled connection before 503 `pool_timeout`")
    db_query_timeout: float = setting("DB_QUERY_TIMEOUT", 2.0, "seconds a read query may take before 503 `database_unavailable`")
    db_list_timeout: float = setting("DB_LIST_TIMEOUT", 5.0, "seconds a list (items, events) may take, in MySQL too (a statement time limit), before 503 `database_unavailable`; its own budget, so a slow list never counts against the point reads")
    list_max_bytes: int = setting("LIST_MAX_BYTES", 4194304, "most bytes of items or events in one list page; a page stops before it (at least one record) and `next` goes on from there")
    db_write_timeout: float = setting("DB_WRITE_TIMEOUT", 10.0, "seconds a drain transaction may take before it is retried; MySQL itself stops a statement past it (MariaDB's max_statement_time), and it must be shorter than WRITE_CLAIM_IDLE")
    db_retry_interval: float = setting("DB_RETRY_INTERVAL", 1.0, "after repeated connection failures, seconds reads fail fast before MySQL is tried again")
    db_reserved_connections: int = setting("DB_RESERVED_CONNECTIONS", 10, "connections kept free for operators when checking the budget")
    db_budget_web_hosts: int = setting("DB_BUDGET_WEB_HOSTS", 1, "hosts running the web server with these settings (for the budget check)")
    db_budget_worker_hosts: int = setting("DB_BUDGET_WORKER_HOSTS", 1, "hosts running Celery workers with these settings (for the budget check)")
    # --- cache ----------------------------------------------------------------
    cache_ttl: float = setting("CACHE_TTL", 3600.0, "seconds a persisted item stays cached")
    cache_ttl_jitter: float = setting("CACHE_TTL_JITTER", 0.1, "fraction of CACHE_TTL taken off at random, so entries do not expire together")
    negative_cache_ttl: float = setting("NEGATIVE_CACHE_TTL", 5.0, "seconds a 404 from MySQL is cached")
    replica_max_lag_s: float = setting("REPLICA_MAX_LAG_S", 30.0, "with MYSQL_REPLICA_URL: for this long after an item is persisted a miss checks the replica's row against its version (an older one is read again from the primary), and a replica that reports more lag than this is not read at all")
    replica_cache_ttl: float = setting("REPLICA_CACHE_TTL", 30.0, "seconds an item read from MYSQL_REPLICA_URL stays cached (a lagging replica's old row does not stay for CACHE_TTL)")
    # --- API ------------------------------------------------------------------
    api_keys: str = setting("API_KEYS", "", "comma-separated bearer keys, each `key` or `key:scope+scope` with scopes `write`, `read`, `admin` (a key without scopes writes and reads); `make run` generates one with every scope into .env", True, secret=True)
    reads_require_key: bool = setting("READS_REQUIRE_KEY", False, "`true`: reads need a bearer key too")
    max_body_bytes: int = setting("MAX_BODY_BYTES", 1048576, "largest request body, chunked bodies included (413 above)")
    body_read_timeout: float = setting("BODY_READ_TIMEOUT", 10.0, "seconds a client has to send its whole request body (408 after); bodies are read before a request takes any shared capacity")
    write_rate_limit: str = setting("WRITE_RATE_LIMIT", "", "per-API-key write rate, e.g. `100/second`, `6000/minute`; empty: off")
    write_queue_high_water: int = setting("WRITE_QUEUE_HIGH_WATER", 500000, "queued records past which writes answer 503 `backpressure`")
    write_durability: str = setting("WRITE_DURABILITY", "aof", "what a 202 promises: `aof` (in Redis's AOF, fsynced every second), `fsync` (fsynced before the 202), `replica` (also on WRITE_MIN_REPLICAS replicas); see docs/guarantees.md")
    write_min_replicas: int = setting("WRITE_MIN_REPLICAS", 1, "with WRITE_DURABILITY=replica: replicas that must hold a write before its 202")
    write_replica_timeout: float = setting("WRITE_REPLICA_TIMEOUT", 0.5, "with WRITE_DURABILITY=replica: seconds to wait for them before 503 `replication_timeout` (less than REDIS_TIMEOUT)")
    write_queue_high_water_bytes: int = setting("WRITE_QUEUE_HIGH_WATER_BYTES", 268435456, "queued bytes past which writes answer 503 `backpressure` (an item counts twice: queue and pending cache entry); at most half of Redis's `maxmemory`, checked at start")
    events_retention_days: float = setting("EVENTS_RETENTION_DAYS", 0.0, "days events are kept (by when they were received), then purged in small batches; 0: forever")
    tombstone_retention_days: float = setting("TOMBSTONE_RETENTION_DAYS", 0.0, "days a deleted item's tombstone is kept, then purged once no older write of its key can still arrive; 0: forever")
    dead_letter_retention_days: float = setting("DEAD_LETTER_RETENTION_DAYS", 0.0, "days a dead letter is kept, then purged; 0: forever")
    receipt_ttl: float = setting("RECEIPT_TTL", 90000.0, "seconds a write receipt is kept, and an Idempotency-Key honoured, in MySQL once its write is persisted (at least 86400)")
    idempotency_cache_s: float = setting("IDEMPOTENCY_CACHE_S", 600.0, "seconds an Idempotency-Key also stays in Redis after its write was accepted, so that a retry gets the same receipt at once; later retries within RECEIPT_TTL are caught in MySQL and never stored twice")
    idempotency_cache_bytes: int = setting("IDEMPOTENCY_CACHE_BYTES", 0, "most bytes of Redis those keys may take (the oldest go first past it); 0: a quarter of Redis's `maxmemory`")
    short_windows_ok: bool = setting("SHORT_WINDOWS_OK", False, "`true`: allow a RECEIPT_TTL under a day, for soak tests that pack a day into minutes; logged at every start")
    # --- the drain ------------------------------------------------------------
    write_batch_max: int = setting("WRITE_BATCH_MAX", 1000, "most records written by one multi-row upsert")
    write_flush_interval: float = setting("WRITE_FLUSH_INTERVAL", 0.2, "seconds the drain waits to fill a batch before writing what it has")
    write_claim_idle: float = setting("WRITE_CLAIM_IDLE", 15.0, "seconds after which entries held by a silent worker are reclaimed (a drain still writing them touches them before each try, so they never look silent)")
    drain_concurrency: int = setting("DRAIN_CONCURRENCY", 0, "drain tasks running at once across all worker hosts; 0: WORKER_CONCURRENCY")
    drain_lag_budget: float = setting("DRAIN_LAG_BUDGET_S", 5.0, "during a burst of writes the drain pauses while the oldest queued write is younger than this, leaving the CPUs to the web; past it the drain takes what it needs (0: never pause)")
    drain_task_seconds: float = setting("DRAIN_TASK_SECONDS", 5.0, "seconds one drain task runs before handing over to its successor")
    drain_idle_task_seconds: float = setting("DRAIN_IDLE_TASK_SECONDS", 60.0, "seconds a drain task that finds nothing to write stays, instead of handing over every DRAIN_TASK_SECONDS: an idle stack adds one task per slot a minute to Flower's list; a task that has written hands over at once (no effect unless above DRAIN_TASK_SECONDS)")
    # --- processes ------------------------------------------------------------
    bind_host: str = setting("BIND_HOST", "127.0.0.1", "address the web server listens on (0.0.0.0 behind a remote proxy)")
    port: int = setting("PORT", 8000, "HTTP port of the web server")
    web_workers: int = setting("WEB_WORKERS", 0, "gunicorn worker processes; 0: one per CPU")
    web_worker_connections: int = setting("WEB_WORKER_CONNECTIONS", 2000, "concurrent clients per gevent worker")
    web_max_active: int = setting("WEB_MAX_ACTIVE", 100, "requests running app code at once per worker; the rest wait their turn (admission control)")
    web_backlog: int = setting("WEB_BACKLOG", 4096, "pending connections the listen socket holds")
    web_timeout: int = setting("WEB_TIMEOUT", 30, "seconds before a silent worker is restarted")
    web_graceful_timeout: int = setting("WEB_GRACEFUL_TIMEOUT", 10, "seconds a stopping worker gets to finish its requests")
    web_send_timeout: float = setting("WEB_SEND_TIMEOUT", 30.0, "seconds a client has to take a response; a reader slower than that gets its connection closed, so it cannot pin the response's memory")
    web_keepalive: int = setting("WEB_KEEPALIVE", 5, "seconds an idle keep-alive connection is held")
    web_max_requests: int = setting("WEB_MAX_REQUESTS", 0, "requests after which a worker is recycled; 0: never")
    web_max_requests_jitter: int = setting("WEB_MAX_REQUESTS_JITTER", 0, "random extra requests before recycling, so workers do not restart together")
    worker_concurrency: int = setting("WORKER_CONCURRENCY", 0, "Celery worker processes per host; 0: one per CPU")
    worker_nice: int = setting("WORKER_NICE", 0, "CPU niceness of the drain processes (0: none); higher lets a burst of requests take the CPUs of a host shared with the web, and the drain falls behind")
    flower_port: int = setting("FLOWER_PORT", 5555, "port of Celery Flower (on 127.0.0.1)")
    flower_basic_auth: str = setting("FLOWER_BASIC_AUTH", "", "`user:password` for Flower; `make run` generates it into .env", secret=True)
    log_level: str = setting("LOG_LEVEL", "info", "`debug`, `info`, `warning`, `error` or `critical` (any case)")
    request_log: bool = setting("REQUEST_LOG", True, "one JSON line per request on stdout (`false`: none)")
    var_dir: str = setting("VAR_DIR", str(HOME / "var"), "runtime files: private servers, logs, pid files, metrics")
    private_mysql_port: int = setting("PRIVATE_MYSQL_PORT", 3307, "port of the private MariaDB `make run` starts")
    private_redis_port: int = setting("PRIVATE_REDIS_PORT", 6380, "port of the private Redis `make run` starts")
    private_redis_maxmemory: int = setting("PRIVATE_REDIS_MAXMEMORY", 2147483648, "bytes of memory the private Redis may use (its `maxmemory`)")
    private_broker_port: int = setting("PRIVATE_BROKER_PORT", 0, "port of the private Redis `make run` starts for Celery's messages (CELERY_BROKER_URL); 0: PRIVATE_REDIS_PORT + 2")
    private_bind_host: str = setting("PRIVATE_BIND_HOST", "127.0.0.1", "address the private MariaDB and Redis listen on; another (this host's address on a private network) lets other hosts use them, for `make run ROLE=data`")
    private_redis_password: str = setting("PRIVATE_REDIS_PASSWORD", "", "password of the private Redis; `make run` generates it into .env", secret=True)
    private_redis_appendfsync: str = setting("PRIVATE_REDIS_APPENDFSYNC", "everysec", "`everysec` or `always`: when the private Redis fsyncs its AOF (see docs/guarantees.md)")

    # --- derived values -------------------------------------------------------
    @property
    def web_worker_count(self) -> int:
        """gunicorn workers: WEB_WORKERS or the CPU count."""
        return self.web_workers or os.cpu_count() or 1

    @property
    def worker_process_count(self) -> int:
        """Celery processes per host: WORKER_CONCURRENCY or the CPU count."""
        return self.worker_concurrency or os.cpu_count() or 1

    @property
    def drain_slots(self) -> int:
        """How many drain tasks may run at once across the cluster."""
        return self.drain_concurrency or self.worker_process_count

    @property
    def api_key_list(self) -> list[tuple[bytes, frozenset[str]]]:
        """The configured bearer keys, as bytes, each with its scopes."""
        return parse_api_keys(self.api_keys)

    @property
    def write_rate(self) -> tuple[int, int] | None:
        """WRITE_RATE_LIMIT as (requests, seconds), or None when off."""
        return parse_rate(self.write_rate_limit) if self.write_rate_limit else None

    @property
    def redis(self) -> "RedisTarget":
        """Where Redis is: one server, or a primary found through Sentinel."""
        return parse_redis(self)

    @property
    def broker(self) -> "RedisTarget":
        """Where Celery's broker is: CELERY_BROKER_URL, or the write queue's Redis when it is unset."""
        if not self.celery_broker_url:
            return self.redis
        return parse_redis_url(self.celery_broker_url, "CELERY_BROKER_URL", self.redis_sentinel_password)

    @property
    def broker_shares_queue_redis(self) -> bool:
        """True when Celery's messages live in the write queue's Redis (a full queue would stop them)."""
        broker, data = self.broker, self.redis
        if broker.is_sentinel or data.is_sentinel:
            return set(broker.sentinels) & set(data.sentinels) != set() and broker.service == data.service
        return _server_of(broker.url) == _server_of(data.url)

    def require(self, *names: str) -> "Settings":
        """Raise ConfigError naming every required variable that is empty."""
        envs = {f.name: f.metadata["env"] for f in dataclasses.fields(self)}
        given = {n for n in names if getattr(self, n)}
        if "redis_url" in names and self.redis_sentinels:
            given.add("redis_url")  # Sentinel finds the server
        missing = [envs[n] for n in names if n not in given]
        if missing:
            raise ConfigError(
                f"missing setting {', '.join(missing)}: set it in the environment or "
                ".env (`make run` fills .env and starts private servers)"
            )
        return self


DAY_S = 86400
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SCOPES = ("write", "read", "admin")
DEFAULT_SCOPES = frozenset({"write", "read"})  # a key without scopes: as before scopes existed


def parse_api_keys(text: str) -> list[tuple[bytes, frozenset[str]]]:
    """'k1,k2:read+admin' into [(b'k1', {write, read}), (b'k2', {read, admin})]; ConfigError on an unknown scope."""
    keys = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key, _, scopes = entry.partition(":")
        names = frozenset(s.strip() for s in scopes.split("+") if s.strip()) if scopes else DEFAULT_SCOPES
        unknown = names - set(SCOPES)
        if unknown or not key.strip():
            raise ConfigError(f"API_KEYS entries look like key or key:write+read+admin; an entry has the unknown "
                              f"scope {sorted(unknown)[0]!r}" if unknown else "API_KEYS has an entry with no key")
        keys.append((key.strip().encode(), names))
    return keys


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)s?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(text: str) -> tuple[int, int]:
    """Parse '100/second' or '6000/minute' into (requests, seconds)."""
    m = _RATE.match(text)
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"WRITE_RATE_LIMIT must look like '100/second' or '6000/minute', got {text!r}")
    per = int(m.group(2) or 1) * _UNITS[m.group(3).lower()]
    return int(m.group(1)), per


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")


def _convert(env: str, kind: type, raw: str) -> Any:
    """Turn the text of variable `env` into `kind`, or raise ConfigError."""
    try:
        if kind is bool:
            if raw.strip().lower() in _TRUE:
                return True
            if raw.strip().lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            value = int(raw.strip().replace("_", ""))
            if value < 0:
                raise ValueError
            return value
        if kind is float:  # seconds; "200ms" is accepted too
            m = _DURATION.match(raw)
            if not m:
                raise ValueError
            return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        return raw.strip()
    except ValueError:
        want = {bool: "true or false", int: "a whole number >= 0", float: "a number of seconds (e.g. 2 or 200ms)"}[kind]
        raise ConfigError(f"{env} must be {want}, got {raw!r}") from None


def env_file_values() -> dict[str, str]:
    """The variables in .env (or SPILLWAY_ENV_FILE), without applying them."""
    path = os.environ.get("SPILLWAY_ENV_FILE", str(HOME / ".env"))
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if os.path.isfile(path) else {}


def _secret_from_file(env: str, path: str) -> str:
    """The content of the file `<env>_FILE` names (a Docker secret, a systemd credential), stripped."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
        raise ConfigError(f"{env}_FILE names {path!r}, which cannot be read: {reason}") from None


def _raw_value(env: str, secret: bool, layers: tuple[Mapping[str, str], ...]) -> str | None:
    """The text of variable `env` from the first layer that sets it (or, for a secret, its `_FILE`)."""
    for layer in layers:
        if secret and f"{env}_FILE" in layer:
            if env in layer:
                raise ConfigError(f"both {env} and {env}_FILE are set; set one of them")
            return _secret_from_file(env, layer[f"{env}_FILE"])
        if env in layer:
            return layer[env]
    return None


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build Settings from .env, then os.environ (which wins), then `overrides`.

    A secret setting (`secret=True` above) may instead name a file holding its
    value with `<NAME>_FILE`, in the environment or .env: how Docker secrets and
    systemd credentials hand secrets over. The environment still wins over .env.
    """
    layers = (os.environ, env_file_values())
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        env = f.metadata["env"]
        if overrides and f.name in overrides:
            values[f.name] = overrides[f.name]
        elif (raw := _raw_value(env, f.metadata["secret"], layers)) is not None:
            values[f.name] = _convert(env, type(f.default), raw)
    settings = Settings(**values)
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    settings = dataclasses.replace(settings, log_level=settings.log_level.lower())  # gunicorn, Celery, logging
    if settings.mysql_tls not in ("auto", "off", "preferred", "required"):
        raise ConfigError(f"MYSQL_TLS must be auto, off, preferred or required, got {settings.mysql_tls!r}")
    if settings.write_rate_limit:
        parse_rate(settings.write_rate_limit)
    parse_api_keys(settings.api_keys)
    if settings.private_redis_appendfsync not in ("everysec", "always"):
        raise ConfigError("PRIVATE_REDIS_APPENDFSYNC must be everysec or always")
    if not 1 <= settings.write_batch_max <= 10000:
        raise ConfigError("WRITE_BATCH_MAX must be between 1 and 10000")
    if settings.write_claim_idle <= settings.db_write_timeout:
        raise ConfigError("WRITE_CLAIM_IDLE must be longer than DB_WRITE_TIMEOUT: another drain would claim a batch "
                          "still being written")
    if settings.write_durability not in ("aof", "fsync", "replica"):
        raise ConfigError(f"WRITE_DURABILITY must be aof, fsync or replica, got {settings.write_durability!r}")
    if settings.write_durability == "replica" and settings.write_replica_timeout >= settings.redis_timeout:
        raise ConfigError("WRITE_REPLICA_TIMEOUT must be less than REDIS_TIMEOUT: a request waits for both")
    if settings.write_durability == "replica" and settings.write_min_replicas < 1:
        raise ConfigError("WRITE_MIN_REPLICAS must be at least 1 with WRITE_DURABILITY=replica")
    if settings.receipt_ttl < DAY_S and not settings.short_windows_ok:
        raise ConfigError(f"RECEIPT_TTL must be at least {DAY_S} (a day: receipts and Idempotency-Keys are promised "
                          "for 24 h), or set SHORT_WINDOWS_OK=true for a test")
    if settings.redis_url or settings.redis_sentinels:
        parse_redis(settings)  # a malformed URL or sentinel list stops start-up here
    if settings.celery_broker_url:
        settings.broker  # noqa: B018 - a malformed CELERY_BROKER_URL stops start-up here too
    return settings


def documented_settings() -> list[tuple[str, Any, str]]:
    """(variable, default, doc) for every setting, in declaration order."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]


def secret_settings() -> list[str]:
    """The variables that may also be given as `<NAME>_FILE`."""
    return [f.metadata["env"] for f in dataclasses.fields(Settings) if f.metadata["secret"]]


@dataclass(frozen=True)
class MySQLTarget:
    """Connection parameters parsed from a mysql:// URL."""

    host: str
    port: int
    user: str
    password: str
    database: str
    unix_socket: str = ""

    @property
    def is_local(self) -> bool:
        """True for a server on this host (TLS buys nothing on loopback)."""
        return bool(self.unix_socket) or self.host in ("127.0.0.1", "localhost", "::1")


def masked(url: str) -> str:
    """A URL with its password replaced by *** (for messages and banners)."""
    scheme, sep, rest = url.partition("://")
    auth, at, where = rest.rpartition("@")
    if not sep or not at or ":" not in auth:
        return url
    return f"{scheme}{sep}{auth.split(':', 1)[0]}:***@{where}"


def redis_userinfo(password: str) -> str:
    """The `:password@` part of a redis:// or sentinel:// URL (percent-encoded); empty without a password."""
    return f":{quote(password, safe='')}@" if password else ""


def parse_mysql_url(url: str, env: str = "MYSQL_URL") -> MySQLTarget:
    """Parse mysql://user:pass@host:port/db (or ?unix_socket=/path) into a MySQLTarget."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql") or not parts.path.strip("/"):
        raise ConfigError(f"{env} must look like mysql://user:password@host:3306/database, got {masked(url)!r}")
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return MySQLTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.strip("/")),
        unix_socket=unquote(query.get("unix_socket", "")),
    )


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL for one server, or Sentinels and the primary's name."""

    url: str  # redis://... for one server; with Sentinel it carries only the password and db
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    password: str = ""
    db: int = 0
    sentinel_password: str = ""

    @property
    def is_sentinel(self) -> bool:
        """True when the primary is found through Sentinel."""
        return bool(self.sentinels)


def _host_port(text: str, env: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{env} must list host:port pairs, got {text.strip()!r}")
    return host.strip("[]"), int(port)


def _server_of(url: str) -> tuple[str, int]:
    """(host, port) of a redis:// URL, for telling two servers apart."""
    parts = urlsplit(url or "redis://localhost/0")
    host = parts.hostname or "localhost"
    return ("127.0.0.1" if host == "localhost" else host), parts.port or 6379


def parse_redis_url(url: str, env: str, sentinel_password: str = "") -> RedisTarget:
    """A redis://, rediss://, unix:// or redis+sentinel:// URL (from variable `env`) as a RedisTarget."""
    if url.startswith("redis+sentinel://"):
        rest = url[len("redis+sentinel://"):]
        auth, _, rest = rest.rpartition("@")
        hosts, _, path = rest.partition("/")
        steps = [p for p in path.split("/") if p]
        if not hosts or not steps or (len(steps) > 1 and not steps[1].isdigit()):
            raise ConfigError(f"{env} must look like redis+sentinel://:password@host:port,host:port/service/db, "
                              f"got {masked(url)!r}")
        password = unquote(auth.split(":", 1)[1]) if ":" in auth else ""
        sentinels = tuple(_host_port(h, env) for h in hosts.split(","))
        db = int(steps[1]) if len(steps) > 1 else 0
        return RedisTarget(f"redis://{auth + '@' if auth else ''}localhost/{db}", sentinels, unquote(steps[0]),
                           password, db, sentinel_password or password)
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{env} must start with redis://, rediss:// or redis+sentinel://, got {masked(url)!r}")
    parts = urlsplit(url or "redis://localhost/0")
    password = unquote(parts.password or "")
    db = int(parts.path.strip("/") or 0) if parts.path.strip("/").isdigit() else 0
    return RedisTarget(url, password=password, db=db)


def parse_redis(settings: Settings) -> RedisTarget:
    """REDIS_URL, a redis+sentinel:// URL, or REDIS_SENTINELS (+ REDIS_SENTINEL_SERVICE), as a RedisTarget."""
    url = settings.redis_url
    target = parse_redis_url(url, "REDIS_URL", settings.redis_sentinel_password)
    if target.is_sentinel or not settings.redis_sentinels:
        return target
    password, db = target.password, target.db
    sentinels = tuple(_host_port(h, "REDIS_SENTINELS") for h in settings.redis_sentinels.split(",") if h.strip())
    return RedisTarget(url or "redis://localhost/0", sentinels, settings.redis_sentinel_service, password, db,
                       settings.redis_sentinel_password or password)
