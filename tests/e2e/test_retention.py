"""Retention: old events, tombstones and dead letters are purged by a periodic task; a tombstone only
once no older write of its key can still arrive."""
import datetime

from deploy.processes import wait_for
from tests.e2e.helpers import FAST, scalar

OLD = datetime.datetime.utcnow() - datetime.timedelta(days=2)
NOW = datetime.datetime.utcnow()


def us(when):
    """A version as Redis gives it: the acceptance time in microseconds."""
    return int(when.replace(tzinfo=datetime.UTC).timestamp() * 1_000_000)


def add(db, sql, rows):
    with db.cursor() as cur:
        cur.executemany(sql, rows)


def test_retention_purges_what_is_past_its_days_and_keeps_a_tombstone_an_older_write_could_undo(fresh, db, rds,
                                                                                              start_worker):
    add(db, "INSERT INTO events (seq, name, level, occurred_at, received_at) VALUES (%s, 'e', 'info', %s, %s)",
        [(us(OLD) + n, OLD, OLD) for n in range(3)] + [(us(NOW) + n, NOW, NOW) for n in range(2)])
    add(db, "INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, %s)",
        [("gone", None, us(OLD) - 2000, 1, OLD),  # an old tombstone nothing older can undo
         ("kept", None, us(OLD), 1, OLD),  # older than its days, but the dead letter below is older still
         ("fresh", None, us(NOW), 1, NOW),  # a recent tombstone
         ("live", '{"v":1}', us(OLD) - 3000, 0, OLD)])  # an item, not a tombstone
    add(db, "INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at) "
            "VALUES (%s, 'w_x', 'items', '{}', 'r', %s)",
        [(us(OLD) - 1000, NOW), (us(OLD) - 500, OLD)])
    worker = start_worker(EVENTS_RETENTION_DAYS=1, TOMBSTONE_RETENTION_DAYS=1, DEAD_LETTER_RETENTION_DAYS=1, **FAST)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM events") == 2, timeout=30, message="retention to run")
    wait_for(lambda: '"task": "spillway.retention"' in worker.log(), timeout=10, message="the task's log line")
    with db.cursor() as cur:
        cur.execute("SELECT k FROM items ORDER BY k")
        assert [k for (k,) in cur.fetchall()] == ["fresh", "kept", "live"]
        cur.execute("SELECT version FROM dead_letters")
        assert [v for (v,) in cur.fetchall()] == [us(OLD) - 1000]
    assert int(rds.hget("spillway:stats", "retention_purged_events")) == 3


def test_without_retention_days_only_receipts_are_purged(fresh, db, rds, start_worker):
    add(db, "INSERT INTO events (seq, name, level, occurred_at, received_at) VALUES (%s, 'e', 'info', %s, %s)",
        [(us(OLD), OLD, OLD)])
    worker = start_worker(**FAST)
    wait_for(lambda: '"task": "spillway.retention"' in worker.log(), timeout=30, message="the retention task")
    assert scalar(db, "SELECT COUNT(*) FROM events") == 1


def test_every_purge_walks_an_index_and_never_the_whole_table(fresh, db):
    from webapp.storage.sql import deadletters, events, items, writes

    add(db, "INSERT INTO events (seq, name, level, occurred_at, received_at) VALUES (%s, 'e', 'info', %s, %s)",
        [(us(OLD) + n, OLD, OLD) for n in range(2000)])
    purges = [(events.PURGE, us(OLD) + 100, "PRIMARY"), (items.PURGE, us(OLD), "items_tombstones"),
              (deadletters.PURGE, OLD, "dead_letters_failed"), (writes.PURGE, "w_0", "PRIMARY")]
    with db.cursor() as cur:
        cur.execute("ANALYZE TABLE events, items, dead_letters, writes")
        cur.fetchall()
        for statement, bound, index in purges:
            cur.execute("EXPLAIN " + statement, (bound, 1000))
            plan = dict(zip([c[0] for c in cur.description], cur.fetchone()))
            assert plan["key"] == index and plan["type"] == "range", (statement, plan)
