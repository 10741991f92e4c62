"""Redis command coalescing for gevent workers: concurrent commands share one round trip.

A cache hit is one GET, and through redis-py each costs a socket write, a
read, two greenlet switches and redis-py's per-command bookkeeping: measured
here, about half of a worker's CPU on hot reads. Under load many greenlets
want a GET at the same moment, so one greenlet per worker sends whatever
is waiting as a single pipeline and hands each caller its reply (measured: raw
cache reads at 500 connections went from 0.51x to 0.74x a hello-world).
Each caller still waits at most its own timeout. A connection found broken
(Redis restarted) is replaced and the batch sent again once; a timeout fails
the batch in flight.

CoalescingRedis is a drop-in redis.Redis whose single commands go through the
coalescer (scripts too: redis-py's Script calls evalsha and script_load on it),
so storage code never knows; pipelines keep using the connection pool.

Group commit (WRITE_DURABILITY=replica): CoalescingRedis.group_commit() sends
a write through a second coalescer, whose batches end with one WAIT, so every
accept in a batch shares one wait for the replicas (a WAIT on the read lane
would hold up the cache reads behind it).
"""
import logging
from typing import Any

import gevent
import redis
from gevent.event import AsyncResult, Event

log = logging.getLogger(__name__)

MAX_BATCH = 512  # bounds the wait of the last caller in a batch

# (command, where its reply goes, (replicas, timeout_ms) to WAIT for after the batch, or None)
Waiting = tuple[tuple[Any, ...], AsyncResult, tuple[int, int] | None]


class RedisCoalescer:
    """Pipelines read commands from many greenlets over one connection."""

    def __init__(self, connection_pool: redis.ConnectionPool) -> None:
        self._pool = connection_pool
        self._waiting: list[Waiting] = []
        self._wake = Event()
        self._conn: Any = None
        self._runner: gevent.Greenlet | None = None

    def reconnect(self) -> None:
        """Drop the connection (the primary moved): the next batch makes a new one, through Sentinel."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def execute(self, *args: Any, timeout: float, wait: tuple[int, int] | None = None) -> Any:
        """Run one command; the reply, or the error Redis (or the connection) gave.

        wait=(replicas, timeout_ms): the batch ends with WAIT, and the reply is (reply, replicas acknowledged).
        """
        if self._runner is None or self._runner.dead:
            self._runner = gevent.spawn(self._run)
        result = AsyncResult()
        self._waiting.append((args, result, wait))
        self._wake.set()
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise redis.TimeoutError(f"no reply from Redis within {timeout:g}s") from None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                self._send(batch)

    def _send(self, batch: list[Waiting]) -> None:
        """Pipeline a batch; a stale connection (Redis restarted) is replaced and retried once.

        Retrying is safe for what goes through here: reads, and the accept
        script, which answers the same receipt when a write id runs twice. A
        timeout is not retried: a hung Redis must not double anyone's wait.
        """
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = self._pool.make_connection()
                commands = [args for args, _, _ in batch]
                wait = next((w for _, _, w in batch if w), None)
                if wait:
                    commands.append(("WAIT", *wait))
                self._conn.send_packed_command(self._conn.pack_commands(commands))
                replies: list[tuple[AsyncResult, Any, Exception | None, bool]] = []
                for _, result, waits in batch:
                    try:
                        replies.append((result, self._conn.read_response(), None, bool(waits)))
                    except redis.ResponseError as error_reply:
                        replies.append((result, None, error_reply, False))  # an error reply for this command only
                acked = self._conn.read_response() if wait else None
                for result, reply, failure, waited in replies:
                    if failure is not None:
                        result.set_exception(failure)
                    else:
                        result.set((reply, acked) if waited else reply)
                return
            except Exception as err:  # the connection broke or timed out
                log.warning("redis coalescer: %s", err)
                if self._conn is not None:
                    self._conn.disconnect()
                    self._conn = None
                batch = [waiting for waiting in batch if not waiting[1].ready()]
                if attempt == 2 or isinstance(err, redis.TimeoutError) or not batch:
                    for _, result, _ in batch:
                        result.set_exception(err)
                    return


class CoalescingRedis(redis.Redis):
    """A redis.Redis whose commands from many greenlets share pipelined round trips."""

    def __init__(self, connection_pool: redis.ConnectionPool, **kwargs: Any) -> None:
        super().__init__(connection_pool=connection_pool, **kwargs)
        self._coalescer = RedisCoalescer(connection_pool)
        self._commits = RedisCoalescer(connection_pool)  # the group-commit lane: its batches end with WAIT
        timeout = connection_pool.connection_kwargs.get("socket_timeout")
        self._timeout = float(timeout) if timeout else 2.0

    def reconnect(self) -> None:
        """Drop every connection to Redis (the primary moved); the next commands reconnect through Sentinel."""
        self._coalescer.reconnect()
        self._commits.reconnect()
        self.connection_pool.disconnect()

    def group_commit(self, command: tuple[Any, ...], replicas: int, timeout_ms: int) -> tuple[Any, int]:
        """Run a write, then wait (with the rest of its batch) for `replicas`: (reply, replicas that have it)."""
        reply, acked = self._commits.execute(*command, timeout=self._timeout, wait=(replicas, timeout_ms))
        return reply, int(acked)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send one command through the coalescer; parse its reply as redis-py would."""
        reply = self._coalescer.execute(*args, timeout=self._timeout)
        options.pop("keys", None)
        callback = self.response_callbacks.get(args[0])  # type: ignore[no-untyped-call]
        return callback(reply, **options) if callback else reply
