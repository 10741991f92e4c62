"""One batch into MySQL: one transaction, one multi-row statement per table, dead letters for rejects.

Applying a batch twice changes nothing: item rows only move to higher
versions, events are keyed by their version. If MySQL rejects a record, the
batch is split in halves until that record is alone; it goes to dead_letters
with the reason, and the rest is written. Errors that say nothing about the
records (the server is away, locked, read-only...) raise Transient instead:
the batch stays queued and is retried.
"""
import logging
from collections.abc import Sequence

import pymysql

from webapp.storage.errors import Unavailable
from webapp.storage.mysql import Database, is_connection_error
from webapp.storage.records import Item, Queued
from webapp.storage.sql import deadletters
from webapp.storage.sql import events as events_sql
from webapp.storage.sql import items as items_sql

log = logging.getLogger(__name__)

# MySQL errors that say nothing about the records (locks, a broken schema,
# privileges, a read-only server): retried, never dead-lettered.
RETRY_ERRORS = {1205, 1213, 1044, 1045, 1046, 1049, 1054, 1064, 1142, 1146, 1227, 1290, 1792, 1836}


class Transient(Exception):
    """MySQL cannot take the batch now; it stays queued and is retried."""


def kind(q: Queued) -> str:
    """'items' or 'events'."""
    return "items" if isinstance(q.record, Item) else "events"


def write(db: Database, records: Sequence[Queued], dead: Sequence[tuple[int, str, str, bytes, str]] = ()) -> None:
    """Write records (and dead letters) in one transaction."""
    newest: dict[str, Queued] = {}
    events = []
    for q in records:
        if isinstance(q.record, Item):
            # within one attempt, only a key's newest record needs writing
            known = newest.get(q.record.key)
            if known is None or known.version < q.version:
                newest[q.record.key] = q
        else:
            events.append(q)
    with db.connection() as con:
        con.begin()
        with con.cursor() as cur:
            if newest:  # in key order: concurrent drains lock rows in the same order
                items_sql.upsert(cur, [newest[k] for k in sorted(newest)])
            if events:
                events_sql.insert(cur, events)
            if dead:
                deadletters.insert(cur, dead)
        con.commit()


def is_transient(err: Exception) -> bool:
    """True if a MySQL error is about the server, not the records."""
    if isinstance(err, Unavailable):
        return True
    code = err.args[0] if err.args else 0
    return is_connection_error(err) or code in RETRY_ERRORS


def apply(db: Database, records: Sequence[Queued], dead: dict[int, str]) -> None:
    """Write records; isolate any MySQL rejects into `dead` {version: reason} (bisection)."""
    try:
        write(db, records)
        return
    except (pymysql.err.Error, Unavailable) as err:
        if is_transient(err):
            raise Transient(str(err)) from err
        failure = err
    if len(records) > 1:
        middle = len(records) // 2
        apply(db, records[:middle], dead)
        apply(db, records[middle:], dead)
        return
    record = records[0]
    reason = f"MySQL error {failure.args[0]}: {failure.args[1] if len(failure.args) > 1 else failure}"
    try:
        write(db, [], dead=[deadletters.row(record, kind(record), reason)])
    except (pymysql.err.Error, Unavailable) as err:
        raise Transient(f"cannot store a dead letter: {err}") from err
    log.error("dead-lettered record %s of write %s: %s", record.version, record.write_id, reason)
    dead[record.version] = reason
