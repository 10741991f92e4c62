"""Retention: old events, tombstones and dead letters are purged by a periodic task; a tombstone only
once no older write of its key can still arrive."""
import datetime

from deploy.processes import wait_for
from tests.e2e.helpers import FAST, scalar

OLD = datetime.datetime.utcnow() - datetime.timedelta(days=2)
NOW = datetime.datetime.utcnow()


def add(db, sql, rows):
    with db.cursor() as cur:
        cur.executemany(sql, rows)


def test_retention_purges_what_is_past_its_days_and_keeps_a_tombstone_an_older_write_could_undo(fresh, db, rds,
                                                                                              start_worker):
    add(db, "INSERT INTO events (seq, name, level, occurred_at, received_at) VALUES (%s, 'e', 'info', %s, %s)",
        [(1, OLD, OLD), (2, OLD, OLD), (3, OLD, OLD), (4, NOW, NOW), (5, NOW, NOW)])
    add(db, "INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, %s)",
        [("gone", None, 100, 1, OLD),  # an old tombstone nothing older can undo
         ("kept", None, 1000, 1, OLD),  # older than its days, but a dead letter with version 500 could come back
         ("fresh", None, 90, 1, NOW),  # a recent tombstone
         ("live", '{"v":1}', 80, 0, OLD)])  # an item, not a tombstone
    add(db, "INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at) "
            "VALUES (%s, 'w_x', 'items', '{}', 'r', %s)",
        [(500, NOW), (2000, OLD)])
    worker = start_worker(EVENTS_RETENTION_DAYS=1, TOMBSTONE_RETENTION_DAYS=1, DEAD_LETTER_RETENTION_DAYS=1, **FAST)
    wait_for(lambda: scalar(db, "SELECT COUNT(*) FROM events") == 2, timeout=30, message="retention to run")
    wait_for(lambda: '"task": "spillway.retention"' in worker.log(), timeout=10, message="the task's log line")
    with db.cursor() as cur:
        cur.execute("SELECT k FROM items ORDER BY k")
        assert [k for (k,) in cur.fetchall()] == ["fresh", "kept", "live"]
        cur.execute("SELECT version FROM dead_letters")
        assert [v for (v,) in cur.fetchall()] == [500]
    assert int(rds.hget("spillway:stats", "retention_purged_events")) == 3


def test_without_retention_days_nothing_is_purged(fresh, db, rds, start_worker):
    add(db, "INSERT INTO events (seq, name, level, occurred_at, received_at) VALUES (%s, 'e', 'info', %s, %s)",
        [(1, OLD, OLD)])
    start_worker(**FAST)
    wait_for(lambda: rds.zcard("spillway:drain:alive"), timeout=30, message="a drain to start")
    assert not rds.exists("spillway:retention:lease")
    assert scalar(db, "SELECT COUNT(*) FROM events") == 1
