"""MySQL: a DBUtils PooledDB per process, made on first use, with bounded waits.

DBUtils' own blocking mode waits forever for a free connection and holds its
lock while it connects, so the bound lives here: a semaphore of the pool's size
with a timeout (DB_POOL_TIMEOUT, then 503 pool_timeout), and a deadline around
the work done with the connection (DB_QUERY_TIMEOUT, then 503
database_unavailable). A connection that timed out mid-protocol is discarded,
never returned to the pool. The pool is rebuilt if the process forked.
"""
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import click
import pymysql
from dbutils.pooled_db import PooledDB

from webapp.config import ConfigError, parse_mysql_url
from webapp.deadline import Expired, deadline
from webapp.errors import DatabaseUnavailable, PoolTimeout
from webapp.metrics import POOL

POOL_WAIT, POOL_TIMEOUT = POOL.labels("wait"), POOL.labels("timeout")

log = logging.getLogger(__name__)

# Error codes that mean "the server is not reachable, went away, or will not let
# us in" (1044/1045/1049: wrong credentials or database, an operator's fix).
CONNECTION_ERRORS = {0, 2002, 2003, 2006, 2013, 2055, 1040, 1044, 1045, 1049, 1053, 1927}


def is_connection_error(err):
    """True if a PyMySQL error means the server is down, hung or refusing us."""
    if isinstance(err, pymysql.err.InterfaceError):
        return True
    return isinstance(err, pymysql.err.OperationalError) and err.args[:1] and err.args[0] in CONNECTION_ERRORS


def connect_kwargs(url, settings, read_timeout, env="MYSQL_URL"):
    """PyMySQL connect() arguments for a mysql:// URL and the TLS setting."""
    target = parse_mysql_url(url, env)
    kwargs = dict(
        user=target.user, password=target.password, database=target.database,
        charset="utf8mb4", autocommit=True,
        connect_timeout=max(1, settings.db_query_timeout),
        read_timeout=read_timeout, write_timeout=read_timeout,
    )
    if target.unix_socket:
        kwargs["unix_socket"] = target.unix_socket
    else:
        kwargs.update(host=target.host, port=target.port)
    tls = settings.mysql_tls
    if tls == "auto":
        tls = "off" if target.is_local else "preferred"
    if tls == "off":
        # PyMySQL tries TLS by default and loads the CA bundle on every connect:
        # 17 ms instead of 0.4 ms per connection here (NOTES-ENV).
        kwargs["ssl_disabled"] = True
    elif tls == "required":
        kwargs.update(ssl_verify_cert=True, ssl_ca=settings.mysql_tls_ca or None)
    return kwargs


class Breaker:
    """After repeated failures to reach MySQL, fail at once for a moment.

    While MySQL is down or hung, every miss would otherwise wait out its full
    timeout, holding a request slot that cached reads need. After `threshold`
    consecutive connection failures, callers get DatabaseUnavailable at once
    for `cooldown` seconds; then one caller probes, and a success closes it.
    """

    def __init__(self, cooldown, threshold=3):
        self.cooldown = cooldown
        self.threshold = threshold
        self.failures = 0
        self.open_until = 0.0

    def check(self):
        """Raise DatabaseUnavailable while open; let one probe through after the cooldown."""
        if self.failures < self.threshold:
            return
        now = time.monotonic()
        if now < self.open_until:
            raise DatabaseUnavailable(retry_after=self.open_until - now)
        self.open_until = now + self.cooldown  # this caller is the probe

    def failed(self):
        """Count a connection failure; open after `threshold` in a row."""
        self.failures += 1
        if self.failures == self.threshold:
            self.open_until = time.monotonic() + self.cooldown

    def succeeded(self):
        """MySQL answered: close."""
        self.failures = 0


class Database:
    """A bounded pool of MySQL connections for one process."""

    def __init__(self, url, settings, size, read_timeout, env="MYSQL_URL"):
        self.size = size
        self.read_timeout = read_timeout
        self.pool_timeout = settings.db_pool_timeout
        self._kwargs = connect_kwargs(url, settings, read_timeout, env)
        self._pid = None
        self._pool = None
        self._slots = None
        self.breaker = Breaker(settings.db_retry_interval)

    def _ensure_pool(self):
        """Make the pool on first use in this process (again after a fork)."""
        if self._pid != os.getpid():
            self._pool = PooledDB(
                creator=pymysql, mincached=0, maxcached=self.size,
                maxconnections=0,  # the semaphore below is the bound
                blocking=False,
                ping=0,  # no ping per checkout: a dead connection fails its
                         # query and DBUtils reconnects and retries once
                reset=False,  # autocommit connections; rollback only after begin()
                **self._kwargs,
            )
            self._slots = threading.BoundedSemaphore(self.size)
            self._pid = os.getpid()

    @contextmanager
    def connection(self, timeout=None):
        """Lend a connection for one unit of work, within the configured bounds.

        Raises PoolTimeout if none is free within DB_POOL_TIMEOUT and
        DatabaseUnavailable if MySQL cannot be reached or does not answer within
        `timeout` (default: the pool's read timeout).
        """
        self._ensure_pool()
        self.breaker.check()
        slots = self._slots
        if not slots.acquire(blocking=False):
            POOL_WAIT.inc()
            if not slots.acquire(timeout=self.pool_timeout):
                POOL_TIMEOUT.inc()
                raise PoolTimeout(retry_after=1)
        con = None
        try:
            with deadline(timeout or self.read_timeout):
                con = self._pool.connection()
                yield con
                con.close()  # back to the pool
                con = None
            self.breaker.succeeded()
        except Expired:
            self.breaker.failed()
            raise DatabaseUnavailable("The database did not answer in time; retry shortly.") from None
        except pymysql.err.Error as err:
            if is_connection_error(err):
                self.breaker.failed()
                log.warning("MySQL unavailable: %s", err)
                raise DatabaseUnavailable() from err
            raise
        finally:
            if con is not None:
                _discard(con)
            slots.release()

    def close(self):
        """Close every idle connection (at shutdown or after a fork)."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
        self._pid = None


def _discard(con):
    """Close a lent connection for good: its protocol state is unknown."""
    steady = getattr(con, "_con", None)
    con._con = None  # so DBUtils does not put it back into the pool
    if steady is not None:
        steady._close()


def connection_budget(settings):
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


def check_connection_budget(settings, url=None):
    """Compare the stack's connection budget with MySQL's max_connections.

    Raises BudgetError when it does not fit; logs a warning and returns None when
    MySQL cannot be reached (the service still serves cached reads and queues writes).
    """
    if not (url or settings.mysql_url):
        return None
    needed, text = connection_budget(settings)
    try:
        con = pymysql.connect(**connect_kwargs(url or settings.mysql_url, settings, 5))
    except pymysql.err.Error as err:
        log.warning("connection budget not checked: MySQL unreachable (%s)", err)
        return None
    try:
        with con.cursor() as cur:
            cur.execute("SELECT @@max_connections")
            limit = int(cur.fetchone()[0])
    finally:
        con.close()
    if needed > limit:
        raise BudgetError(
            f"MySQL connection budget exceeded: {text}, but the server's max_connections "
            f"is {limit}. Lower DB_POOL_SIZE, WEB_WORKERS or WORKER_CONCURRENCY, or raise "
            "max_connections on the server."
        )
    log.info("MySQL connection budget: %s <= max_connections %d", text, limit)
    return needed, limit


def apply_schema(settings):
    """Create the tables from schema.sql (idempotent)."""
    sql = (Path(__file__).parent / "schema.sql").read_text()
    statements = [s for s in _strip_comments(sql).split(";") if s.strip()]
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 30))
    try:
        with con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        con.close()


def _strip_comments(sql):
    """Drop -- comment lines from schema.sql."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def init_app(app):
    """Register `flask --app webapp init-db`."""

    @app.cli.command("init-db")
    def init_db_command():
        """Create the tables (safe to run again)."""
        apply_schema(app.extensions["spillway"].settings)
        click.echo("Schema applied.")
