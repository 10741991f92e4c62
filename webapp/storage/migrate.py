"""Versioned schema migrations (yoyo-migrations): the files in migrations/, applied in order, once each.

`make run`, the test bootstrap and `spillway migrate` (or `init-db`) apply every
migration not yet applied; yoyo records them in `_yoyo_migration` and holds a
lock row while it works, so two starts at once do not both migrate. The first
migration is the schema as `schema.sql` made it before migrations existed,
idempotent, so a database created by it upgrades in place with its data.
"""
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
from yoyo import read_migrations
from yoyo.backends.core.mysql import MySQLBackend
from yoyo.connections import parse_uri

from webapp.config import Settings, masked
from webapp.storage.dialect import EXISTS, Server
from webapp.storage.mysql import connect_kwargs

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_TIMEOUT_S = 60


class ServerCursor(pymysql.cursors.Cursor):
    """A cursor that sends the migrations' statements as the server takes them (webapp/storage/dialect.py)."""

    def execute(self, query: str, args: Any = None) -> int:
        server = Server.from_version(self.connection.get_server_info())  # type: ignore[no-untyped-call]
        query, guard = server.translate(query)
        if guard is not None:
            kind, table, name = guard
            with self.connection.cursor(pymysql.cursors.Cursor) as cur:  # yoyo prints this cursor's rows
                cur.execute(EXISTS[kind], (table, name))
                found = cur.fetchone()
                if found and found[0]:
                    return 0  # already there: what IF NOT EXISTS does on MariaDB
        return int(super().execute(query, args))


def _backend(settings: Settings) -> MySQLBackend:
    """yoyo's MySQL backend, connected the way Spillway connects (TLS setting, timeouts)."""
    kwargs = {**connect_kwargs(settings.mysql_url, settings, 600), "autocommit": False,
              "cursorclass": ServerCursor}

    class Backend(MySQLBackend):  # type: ignore[misc]  # yoyo is untyped
        def connect(self, dburi: Any) -> Any:
            return pymysql.connect(**kwargs)

    backend = Backend(parse_uri(masked(settings.mysql_url).replace("***", "x")), "_yoyo_migration")
    backend.init_database()  # yoyo's lock table, as its get_backend() does
    return backend


def pending(settings: Settings) -> list[str]:
    """The ids of the migrations not applied yet."""
    backend = _backend(settings)
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS)))]
    finally:
        backend.connection.close()


def migrate(settings: Settings) -> list[str]:
    """Apply every migration not applied yet (under yoyo's lock); return their ids."""
    backend = _backend(settings)
    try:
        with backend.lock(LOCK_TIMEOUT_S):
            todo = backend.to_apply(read_migrations(str(MIGRATIONS)))
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
