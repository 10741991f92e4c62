"""Start-up checks and set-up: the MySQL connection budget and the schema.

gunicorn's master and every Celery worker check the budget before they start,
so the connections of all processes together never exceed max_connections.
"""
import logging
from pathlib import Path

import pymysql

from webapp.config import ConfigError, Settings
from webapp.storage.mysql import connect_kwargs

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).parent / "schema.sql"


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


def check_connection_budget(settings: Settings, url: str | None = None) -> tuple[int, int] | None:
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


def apply_schema(settings: Settings) -> None:
    """Create the tables from schema.sql (idempotent)."""
    statements = [s for s in _strip_comments(SCHEMA.read_text()).split(";") if s.strip()]
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 30))
    try:
        with con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        con.close()


def _strip_comments(sql: str) -> str:
    """Drop -- comment lines from schema.sql."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
