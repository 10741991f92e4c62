"""The connections of one process (MySQL pools, Redis) and the helpers built on them.

Nothing connects at import: each piece is made on first use in the process that
uses it. gunicorn builds the app inside each worker (no preload), so web workers
never share sockets; Celery calls reset() in every forked pool process.
"""
import logging
from functools import cached_property

from webapp import cache
from webapp.db import Database
from webapp.errors import ServiceUnavailable
from webapp.sql import items as items_sql

log = logging.getLogger(__name__)


class Services:
    """Per-process connections for the web app ("web") or a drain worker ("worker")."""

    _MADE_ON_USE = ("redis", "coalescer", "db", "replica", "cache", "queue")

    def __init__(self, settings, role="web"):
        self.settings = settings
        self.role = role

    def reset(self):
        """Forget connections inherited through a fork; they are made again on use."""
        for name in self._MADE_ON_USE:
            self.__dict__.pop(name, None)

    @cached_property
    def redis(self):
        """The Redis client (a bounded, blocking pool in web workers)."""
        return cache.make_redis(self.settings, blocking=self.role == "web")

    @cached_property
    def coalescer(self):
        """Pipelines this process's concurrent Redis commands (gevent web workers only), else None."""
        from webapp.deadline import gevent_active

        if not gevent_active():
            return None
        from webapp.coalesce import RedisCoalescer

        return RedisCoalescer(self.redis.connection_pool)

    @cached_property
    def db(self):
        """The MySQL primary: DB_POOL_SIZE connections in web, one per drain process."""
        s = self.settings
        if self.role == "web":
            return Database(s.mysql_url, s, s.db_pool_size, s.db_query_timeout)
        return Database(s.mysql_url, s, 1, s.db_write_timeout)

    @cached_property
    def replica(self):
        """The read replica's pool, or None when MYSQL_REPLICA_URL is unset."""
        s = self.settings
        if not s.mysql_replica_url:
            return None
        return Database(s.mysql_replica_url, s, s.db_pool_size, s.db_query_timeout, env="MYSQL_REPLICA_URL")

    @cached_property
    def cache(self):
        """Cache-aside reads of items."""
        return cache.ItemCache(self.redis, self.settings, self.load_item, self.coalescer)

    @cached_property
    def queue(self):
        """The durable write queue."""
        from webapp.writequeue import WriteQueue

        return WriteQueue(self.redis, self.settings, self.coalescer)

    def read(self, fn):
        """Run fn(connection) on the replica if there is one, else (or if it fails) the primary."""
        if self.replica is not None:
            try:
                with self.replica.connection() as con:
                    return fn(con)
            except ServiceUnavailable as err:
                log.warning("replica unavailable (%s); reading from the primary", err.code)
        with self.db.connection() as con:
            return fn(con)

    def load_item(self, key):
        """The cache's loader: an item's row from MySQL."""
        return self.read(lambda con: items_sql.get(con, key))

    def close(self):
        """Close pools and clients (at process exit)."""
        for name in ("db", "replica"):
            pool = self.__dict__.get(name)
            if pool is not None:
                pool.close()
        client = self.__dict__.get("redis")
        if client is not None:
            client.close()
