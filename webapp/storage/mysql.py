"""MySQL: a DBUtils PooledDB per process, made on first use, with bounded waits.

DBUtils' own blocking mode waits forever for a free connection and holds its
lock while it connects, so the bound lives here: a semaphore of the pool's size
with a timeout (DB_POOL_TIMEOUT, then PoolTimeout), and a time box around the
work done with the connection (DB_QUERY_TIMEOUT, then DatabaseUnavailable). A
connection that timed out mid-protocol is discarded, never returned to the
pool. The pool is rebuilt if the process forked.
"""
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pymysql
from dbutils.pooled_db import PooledDB

from webapp.config import Settings, parse_mysql_url
from webapp.metrics import BREAKER_OPEN, POOL
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.errors import DatabaseUnavailable, PoolTimeout, Unavailable

POOL_WAIT, POOL_TIMEOUT = POOL.labels("wait"), POOL.labels("timeout")
LAG_CHECK_S = 5.0  # how often a replica's lag is asked
T = TypeVar("T")

log = logging.getLogger(__name__)

# Error codes that mean "the server is not reachable, went away, or will not let
# us in" (1044/1045/1049: wrong credentials or database, an operator's fix).
CONNECTION_ERRORS = {0, 2002, 2003, 2006, 2013, 2055, 1040, 1044, 1045, 1049, 1053, 1927}


def is_connection_error(err: Exception) -> bool:
    """True if a PyMySQL error means the server is down, hung or refusing us."""
    if isinstance(err, pymysql.err.InterfaceError):
        return True
    return isinstance(err, pymysql.err.OperationalError) and bool(err.args) and err.args[0] in CONNECTION_ERRORS


def connect_kwargs(url: str, settings: Settings, read_timeout: float, env: str = "MYSQL_URL") -> dict[str, Any]:
    """PyMySQL connect() arguments for a mysql:// URL and the TLS setting."""
    target = parse_mysql_url(url, env)
    kwargs: dict[str, Any] = dict(
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
        # measured 17 ms instead of 0.4 ms per connection against a local server.
        kwargs["ssl_disabled"] = True
    elif tls == "required":
        kwargs.update(ssl_verify_cert=True, ssl_ca=settings.mysql_tls_ca or None)
    return kwargs


class Breaker:
    """After repeated failures to reach MySQL, fail at once for a moment.

    While MySQL is down or hung, every miss would otherwise wait out its full
    timeout, holding a request slot that cached reads need. After `threshold`
    consecutive failures to get a connection (a query that is slow, or times out,
    on a connection made is not one: a slow list must not fail the point reads
    of a healthy server), callers get DatabaseUnavailable at once
    for `cooldown` seconds; then one caller probes, and a success closes it.
    `spillway_db_breaker_open{database}` is 1 from the opening until that success.
    """

    def __init__(self, cooldown: float, threshold: int = 3, database: str = "primary") -> None:
        self.cooldown = cooldown
        self.threshold = threshold
        self.failures = 0
        self.open_until = 0.0
        self._gauge = BREAKER_OPEN.labels(database)
        self._gauge.set(0)

    def check(self) -> None:
        """Raise DatabaseUnavailable while open; let one probe through after the cooldown."""
        if self.failures < self.threshold:
            return
        now = time.monotonic()
        if now < self.open_until:
            raise DatabaseUnavailable("MySQL failed repeatedly; not trying again yet",
                                      retry_after=self.open_until - now)
        self.open_until = now + self.cooldown  # this caller is the probe

    def failed(self) -> None:
        """Count a connection failure; open after `threshold` in a row."""
        self.failures += 1
        if self.failures == self.threshold:
            self.open_until = time.monotonic() + self.cooldown
            self._gauge.set(1)

    def succeeded(self) -> None:
        """MySQL answered: close."""
        if self.failures >= self.threshold:
            self._gauge.set(0)
        self.failures = 0


class Database:
    """A bounded pool of MySQL connections for one process."""

    def __init__(self, url: str, settings: Settings, size: int, read_timeout: float, env: str = "MYSQL_URL",
                 timebox: Timebox = no_timebox, name: str = "primary", statement_limit: float = 0) -> None:
        self.size = size
        # The server stops a statement its client gave up on (MariaDB reads the executable comment;
        # other servers ignore it): a timed-out statement no longer runs on, holding its connection.
        self._session = [f"SET @spillway = 1 /*M!100108 , max_statement_time = {statement_limit:g} */"] \
            if statement_limit else []
        self.read_timeout = read_timeout
        self.pool_timeout = settings.db_pool_timeout
        self._kwargs = connect_kwargs(url, settings, read_timeout, env)
        self._timebox = timebox
        self._pid: int | None = None
        self._pool: PooledDB | None = None
        self._slots = threading.BoundedSemaphore(size)
        self.breaker = Breaker(settings.db_retry_interval, database=name)

    def _ensure_pool(self) -> PooledDB:
        """Make the pool on first use in this process (again after a fork)."""
        if self._pool is None or self._pid != os.getpid():
            self._pool = PooledDB(
                creator=pymysql, mincached=0, maxcached=self.size,
                maxconnections=0,  # the semaphore below is the bound
                blocking=False,
                ping=0,  # no ping per checkout: a dead connection fails its
                         # query and DBUtils reconnects and retries once
                reset=False,  # autocommit connections; rollback only after begin()
                setsession=self._session,
                **self._kwargs,
            )
            self._slots = threading.BoundedSemaphore(self.size)
            self._pid = os.getpid()
        return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None, pool_timeout: float | None = None) -> Iterator[Any]:
        """Lend a connection for one unit of work, within the configured bounds.

        Raises PoolTimeout if none is free within `pool_timeout` (default
        DB_POOL_TIMEOUT) and DatabaseUnavailable if MySQL cannot be reached or
        does not answer within `timeout` (default: the pool's read timeout).
        """
        pool = self._ensure_pool()
        self.breaker.check()
        slots = self._slots
        if not slots.acquire(blocking=False):
            POOL_WAIT.inc()
            if not slots.acquire(timeout=self.pool_timeout if pool_timeout is None else pool_timeout):
                POOL_TIMEOUT.inc()
                raise PoolTimeout("every pooled MySQL connection is busy", retry_after=1)
        con = None
        connected = False  # only a failure to get a connection opens the breaker: a slow query is the query's
        try:
            with self._timebox(timeout or self.read_timeout):
                con = pool.connection()
                connected = True
                yield con
                con.close()  # back to the pool
                con = None
            self.breaker.succeeded()
        except TimeoutError:
            if not connected:
                self.breaker.failed()
            raise DatabaseUnavailable("MySQL did not answer in time") from None
        except pymysql.err.Error as err:
            if is_connection_error(err):
                if not connected:
                    self.breaker.failed()
                log.warning("MySQL unavailable: %s", err)
                raise DatabaseUnavailable(str(err)) from err
            raise
        finally:
            if con is not None:
                _discard(con)
            slots.release()

    def close(self) -> None:
        """Close every idle connection (at shutdown or after a fork)."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
        self._pid = None


def _discard(con: Any) -> None:
    """Close a lent connection for good: its protocol state is unknown."""
    steady = getattr(con, "_con", None)
    con._con = None  # so DBUtils does not put it back into the pool
    if steady is not None:
        steady._close()


class Reads:
    """Where reads go: the replica if there is one, falling back to the primary when it fails.

    Both tries together stay within one read's bound (DB_POOL_TIMEOUT +
    DB_QUERY_TIMEOUT): the replica gets half of each, the primary what is left.
    """

    def __init__(self, primary: Database, replica: Database | None, max_lag_s: float = 30.0) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_s = max_lag_s
        self._lag_checked = -LAG_CHECK_S
        self._replica_usable = True

    def replica_usable(self) -> bool:
        """False while the replica reports more lag than REPLICA_MAX_LAG_S, or that it does not replicate.

        Asked every LAG_CHECK_S (SHOW SLAVE STATUS: the replica's user needs
        REPLICATION CLIENT, or SLAVE MONITOR on MariaDB). A server that will not
        say (no rights, not a replica at all) is used; the versions persisted in
        the last REPLICA_MAX_LAG_S still guard each miss (storage/cache.py).
        """
        if self.replica is None:
            return False
        if time.monotonic() - self._lag_checked >= LAG_CHECK_S:
            self._lag_checked = time.monotonic()
            try:
                with self.replica.connection(timeout=1, pool_timeout=0.5) as con, con.cursor() as cur:
                    cur.execute("SHOW SLAVE STATUS")
                    row = cur.fetchone()
                    names = [d[0] for d in cur.description or ()]
            except (Unavailable, pymysql.err.Error):
                return self._replica_usable
            lag = dict(zip(names, row, strict=True)).get("Seconds_Behind_Master", 0) if row else 0
            usable = lag is not None and lag <= self.max_lag_s
            if usable != self._replica_usable:
                log.warning("MySQL replica %s (lag %s s)", "back in use" if usable else "not used", lag)
            self._replica_usable = usable
        return self._replica_usable

    def run(self, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """fn(connection) on the replica if there is one, else (or if it fails) on the primary.

        timeout: the read's own bound, for reads with a budget of their own (lists: DB_LIST_TIMEOUT).
        """
        return self.run_where(fn, timeout)[0]

    def run_where(self, fn: Callable[[Any], T], timeout: float | None = None) -> tuple[T, bool]:
        """(fn(connection), True if the replica answered)."""
        p = self.primary
        read = timeout or p.read_timeout
        if self.replica is None or not self.replica_usable():
            with self.primary.connection(timeout=read) as con:
                return fn(con), False
        started = time.monotonic()
        try:
            with self.replica.connection(timeout=read / 2, pool_timeout=p.pool_timeout / 2) as con:
                return fn(con), True
        except Unavailable as err:
            log.warning("replica unavailable (%s); reading from the primary", err)
        left = p.pool_timeout + read - (time.monotonic() - started)
        wait = max(0.05, min(p.pool_timeout, left / 2))
        with p.connection(timeout=max(0.1, left - wait), pool_timeout=wait) as con:
            return fn(con), False
