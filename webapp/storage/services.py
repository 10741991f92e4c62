"""The storage objects of one process (MySQL pools, the Redis client and what is built on them).

Nothing connects at import: each piece is made on first use in the process that
uses it. gunicorn builds the app inside each worker (no preload), so web workers
never share sockets; Celery calls reset() in every forked pool process. The web
passes its own Redis client class (the coalescer) and a gevent time box; the
drain uses plain redis-py and the sockets' own timeouts.
"""
from functools import cached_property

from redis import Redis

from webapp.config import Settings
from webapp.storage import redis_client
from webapp.storage.bounds import Timebox, no_timebox
from webapp.storage.cache import ItemCache
from webapp.storage.deadletters import DeadLetters
from webapp.storage.failover import Failover
from webapp.storage.housekeeping import Housekeeping
from webapp.storage.leases import Leases
from webapp.storage.mysql import Database, Reads
from webapp.storage.queue import WriteQueue
from webapp.storage.receipts import Receipts
from webapp.storage.retention import Retention
from webapp.storage.stream import Stream


class Services:
    """Per-process storage for the web app (role "web") or a drain worker (role "worker")."""

    _MADE_ON_USE = ("redis", "redis_replica", "failover", "db", "replica", "reads", "cache", "queue", "receipts",
                    "stream", "leases", "housekeeping", "retention", "dead_letters")

    def __init__(self, settings: Settings, role: str = "web", redis_class: type[Redis] = Redis,
                 timebox: Timebox = no_timebox) -> None:
        self.settings = settings
        self.role = role
        self.redis_class = redis_class
        self.timebox = timebox

    def reset(self) -> None:
        """Forget connections inherited through a fork; they are made again on use."""
        for name in self._MADE_ON_USE:
            self.__dict__.pop(name, None)

    @cached_property
    def redis(self) -> Redis:
        """The Redis client (a bounded, blocking pool in web workers)."""
        return redis_client.connect(self.settings, blocking=self.role == "web", client_class=self.redis_class)

    @cached_property
    def failover(self) -> Failover:
        """Where the primary is (Sentinel): a move drops this process's Redis connections at once."""
        failover = Failover(self.settings)
        failover.on_switch(self._reconnect)
        return failover

    def _reconnect(self) -> None:
        client = self.__dict__.get("redis")
        if client is None:
            return
        reconnect = getattr(client, "reconnect", None)  # the web's coalescer has connections of its own
        if reconnect is not None:
            reconnect()
        else:
            client.connection_pool.disconnect()

    @cached_property
    def redis_replica(self) -> Redis | None:
        """A Redis replica found through Sentinel (cached reads while the primary is away), or None."""
        return redis_client.connect_replica(self.settings)

    @cached_property
    def db(self) -> Database:
        """The MySQL primary: DB_POOL_SIZE connections in web, one per drain process."""
        s = self.settings
        if self.role == "web":
            return Database(s.mysql_url, s, s.db_pool_size, s.db_query_timeout, timebox=self.timebox,
                            statement_limit=max(s.db_query_timeout, s.db_list_timeout))
        return Database(s.mysql_url, s, 1, s.db_write_timeout, timebox=self.timebox, statement_limit=s.db_write_timeout)

    @cached_property
    def replica(self) -> Database | None:
        """The read replica's pool, or None when MYSQL_REPLICA_URL is unset."""
        s = self.settings
        if not s.mysql_replica_url:
            return None
        return Database(s.mysql_replica_url, s, s.db_pool_size, s.db_query_timeout, env="MYSQL_REPLICA_URL",
                        timebox=self.timebox, name="replica")

    @cached_property
    def reads(self) -> Reads:
        """Reads of persisted rows: the replica if there is one, else the primary."""
        return Reads(self.db, self.replica, self.settings.replica_max_lag_s)

    @cached_property
    def cache(self) -> ItemCache:
        """Cache-aside reads of items."""
        return ItemCache(self.redis, self.settings, self.reads, self.timebox, self.redis_replica)

    @cached_property
    def queue(self) -> WriteQueue:
        """The write queue, web side: append, receipts, stats."""
        return WriteQueue(self.redis, self.settings, self.timebox, self.failover)

    @cached_property
    def receipts(self) -> Receipts:
        """Write receipts: Redis while queued, MySQL once persisted."""
        return Receipts(self.queue, self.db, self.settings)

    @cached_property
    def stream(self) -> Stream:
        """The write queue, drain side: read, claim, acknowledge."""
        return Stream(self.redis, self.settings, self.timebox)

    @cached_property
    def leases(self) -> Leases:
        """The drain's slot leases, heartbeats and flags."""
        return Leases(self.redis, self.settings, self.timebox)

    @cached_property
    def housekeeping(self) -> Housekeeping:
        """Receipts and idempotency keys past their time; the retention lease."""
        return Housekeeping(self.redis, self.settings, self.timebox)

    @cached_property
    def retention(self) -> Retention:
        """Purging rows past their retention days."""
        return Retention(self.db, self.redis, self.stream, self.settings, self.timebox)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        """Records MySQL rejected: list, redrive, purge."""
        return DeadLetters(self.db, self.redis, self.settings, self.timebox)

    def close(self) -> None:
        """Close pools and clients (at process exit)."""
        for name in ("db", "replica"):
            pool = self.__dict__.get(name)
            if pool is not None:
                pool.close()
        for name in ("redis", "redis_replica"):
            client = self.__dict__.get(name)
            if client is not None:
                client.close()
