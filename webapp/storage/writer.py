"""One batch into MySQL: one transaction, one multi-row statement per table, dead letters for rejects.

persist() is what the drain calls with a batch of Stream entries. In one
transaction it claims their Idempotency-Keys (sql/writes.py: a write whose key
an earlier write already holds, with the same body, is a duplicate: none of its
records is written), writes the records, and archives every write's final
receipt, so that Redis can let the receipt go once the entries are acknowledged.

Applying a batch twice changes nothing: item rows only move to higher
versions, events are keyed by their version, receipts and claims are keyed by
write. Blame is placed narrowly: only MySQL rejecting a record's own data
(DATA_ERRORS) sends it to dead_letters; the batch is split in halves until that
record is alone, and the rest is written. Every other error is the server's (a
killed query, a statement or lock timeout, a full table or disk, a read-only
server, a lost connection, anything unknown): it raises WriteDeferred, the
batch stays queued and is retried with backoff.
"""
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from webapp.storage.errors import Unavailable, WriteDeferred
from webapp.storage.mysql import Database, is_connection_error
from webapp.storage.records import Item, Queued
from webapp.storage.sql import deadletters
from webapp.storage.sql import events as events_sql
from webapp.storage.sql import items as items_sql
from webapp.storage.sql import writes as writes_sql
from webapp.storage.stream import Entry

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


@dataclass(frozen=True)
class Persisted:
    """What persisting a batch did: records dead-lettered (version -> reason), writes stored as duplicates."""

    dead: dict[int, str]
    duplicates: frozenset[str]


def persist(db: Database, entries: Sequence[Entry]) -> Persisted:
    """Claim the entries' Idempotency-Keys, write their records, archive their receipts; raises WriteDeferred.

    One transaction when MySQL takes every record (the usual case); when it
    rejects some record's data, the claims, the records (bisected) and the
    receipts go in transactions of their own.
    """
    try:
        with db.connection() as con:
            con.begin()
            with con.cursor() as cur:
                duplicates, claimed = _claim(cur, entries)
                _write(cur, [q for e in entries if e.write_id not in duplicates for q in e.queued()])
                _archive(cur, entries, {}, duplicates, claimed)
            con.commit()
        return Persisted({}, frozenset(duplicates))
    except (pymysql.err.Error, Unavailable) as err:
        if not is_data_error(err):
            raise WriteDeferred(describe(err)) from err
    with _transaction(db) as cur:
        duplicates, claimed = _claim(cur, entries)
    dead: dict[int, str] = {}
    apply(db, [q for e in entries if e.write_id not in duplicates for q in e.queued()], dead)
    with _transaction(db) as cur:
        _archive(cur, entries, dead, duplicates, claimed)
    return Persisted(dead, frozenset(duplicates))


@contextmanager
def _transaction(db: Database) -> Iterator[Any]:
    """One transaction on a pooled connection; any MySQL error in it is the server's (WriteDeferred)."""
    try:
        with db.connection() as con:
            con.begin()
            with con.cursor() as cur:
                yield cur
            con.commit()
    except (pymysql.err.Error, Unavailable) as err:
        raise WriteDeferred(describe(err)) from err


def _claim(cur: Any, entries: Sequence[Entry]) -> tuple[dict[str, str], set[str]]:
    """Claim the entries' Idempotency-Keys: ({duplicate write id: the write holding its key}, claimers)."""
    claims = [(e.write_id, e.kind, e.count, writes_sql.when(e.accepted_us), e.idem_key, e.request_hash or "")
              for e in entries if e.idem_key and not e.redrive]
    if not claims:
        return {}, set()
    owners = writes_sql.claim(cur, claims)
    duplicates: dict[str, str] = {}
    claimed = set()
    for write_id, _, _, _, idem_key, request_hash in claims:
        owner, owner_hash = owners.get(idem_key, ("", ""))
        if owner == write_id:
            claimed.add(write_id)
        elif owner_hash == request_hash:  # the same request again: a retry Redis no longer knew
            duplicates[write_id] = owner
        # else: another body under the same key, accepted after Redis let the key go: written as a write of
        # its own, without the key (the first write keeps it)
    return duplicates, claimed


def _archive(cur: Any, entries: Sequence[Entry], dead: dict[int, str], duplicates: dict[str, str],
             claimed: set[str]) -> None:
    """The final receipts of the entries' writes (redriven records: their writes' counts again)."""
    rows: list[writes_sql.Archived] = []
    for e in entries:
        if e.redrive:
            continue
        when = writes_sql.when(e.accepted_us)
        if e.write_id in duplicates:
            rows.append((e.write_id, e.kind, "persisted", e.count, e.count, 0, when, None, e.request_hash,
                         duplicates[e.write_id]))
            continue
        lost = sum(1 for i in range(e.count) if e.version + i in dead)
        idem = e.idem_key if e.write_id in claimed else None
        rows.append((e.write_id, e.kind, "dead" if lost else "persisted", e.count, e.count - lost, lost, when,
                     idem, e.request_hash if idem else None, None))
    if rows:
        writes_sql.archive(cur, rows)
    redriven = [e for e in entries if e.redrive]
    if redriven:  # a redriven record now written is dead no more, whenever the redrive deletes its row
        back = [q.version for e in redriven for q in e.queued() if q.version not in dead]
        if back:
            deadletters.delete_versions(cur, back)
        writes_sql.recount(cur, sorted({e.write_id for e in redriven}))


def write(db: Database, records: Sequence[Queued], dead: Sequence[deadletters.Row] = ()) -> None:
    """Write records (and dead letters) in one transaction."""
    with db.connection() as con:
        con.begin()
        with con.cursor() as cur:
            _write(cur, records)
            if dead:
                deadletters.insert(cur, dead)
        con.commit()


def _write(cur: Any, records: Sequence[Queued]) -> None:
    """Records in the statements of one transaction: items by their newest record, then events."""
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
    if newest:  # in key order: concurrent drains lock rows in the same order
        items_sql.upsert(cur, [newest[k] for k in sorted(newest)])
    if events:
        events_sql.insert(cur, events)


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
