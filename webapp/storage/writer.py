"""One batch into MySQL: one transaction, one multi-row statement per table, dead letters for rejects.

Applying a batch twice changes nothing: item rows only move to higher
versions, events are keyed by their version. Blame is placed narrowly: only
MySQL rejecting a record's own data (DATA_ERRORS) sends it to dead_letters; the
batch is split in halves until that record is alone, and the rest is written.
Every other error is the server's (a killed query, a statement or lock timeout,
a full table or disk, a read-only server, a lost connection, anything unknown):
it raises WriteDeferred, the batch stays queued and is retried with backoff.
"""
import logging
from collections.abc import Sequence

import pymysql

from webapp.storage.errors import Unavailable, WriteDeferred
from webapp.storage.mysql import Database, is_connection_error
from webapp.storage.records import Item, Queued
from webapp.storage.sql import deadletters
from webapp.storage.sql import events as events_sql
from webapp.storage.sql import items as items_sql

log = logging.getLogger(__name__)

# MySQL errors that reject a record's own data: the only ones that dead-letter it.
DATA_ERRORS = {
    1048,  # ER_BAD_NULL_ERROR: column cannot be null
    1062,  # ER_DUP_ENTRY: a unique constraint (beyond the keys the upserts expect)
    1264,  # ER_WARN_DATA_OUT_OF_RANGE
    1265,  # WARN_DATA_TRUNCATED (an error in strict mode)
    1292,  # ER_TRUNCATED_WRONG_VALUE: incorrect date/time or number
    1300,  # ER_INVALID_CHARACTER_STRING
    1366,  # ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: incorrect string or integer value
    1406,  # ER_DATA_TOO_LONG
    1451, 1452,  # a foreign key constraint
    1644,  # ER_SIGNAL_EXCEPTION: a trigger's SIGNAL
    1690,  # ER_DATA_OUT_OF_RANGE
    3819,  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
    4025,  # ER_CONSTRAINT_FAILED: a CHECK constraint (MariaDB)
}


def write(db: Database, records: Sequence[Queued], dead: Sequence[deadletters.Row] = ()) -> None:
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


def is_data_error(err: Exception) -> bool:
    """True only if MySQL rejected the data of the records it was given (see DATA_ERRORS)."""
    if not isinstance(err, pymysql.err.Error) or is_connection_error(err):
        return False
    return bool(err.args) and err.args[0] in DATA_ERRORS


def apply(db: Database, records: Sequence[Queued], dead: dict[int, str]) -> None:
    """Write records; isolate any MySQL rejects into `dead` {version: reason} (bisection)."""
    try:
        write(db, records)
        return
    except (pymysql.err.Error, Unavailable) as err:
        if not is_data_error(err):
            raise WriteDeferred(describe(err)) from err
        failure = err
    if len(records) > 1:
        middle = len(records) // 2
        apply(db, records[:middle], dead)
        apply(db, records[middle:], dead)
        return
    record = records[0]
    reason = describe(failure)
    try:
        write(db, [], dead=[deadletters.row(record, reason)])
    except (pymysql.err.Error, Unavailable) as err:
        raise WriteDeferred(f"cannot store a dead letter: {describe(err)}") from err
    log.error("dead-lettered record %s of write %s: %s", record.version, record.write_id, reason)
    dead[record.version] = reason


def describe(err: Exception) -> str:
    """'MySQL error 1406: Data too long ...' (or the storage error's text)."""
    if isinstance(err, pymysql.err.Error) and len(err.args) > 1:
        return f"MySQL error {err.args[0]}: {err.args[1]}"
    return f"{type(err).__name__}: {err}"
