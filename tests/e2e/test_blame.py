"""Blame is placed right: only MySQL rejecting a record's own data dead-letters it; the server's errors are retried.

Before, only a fixed list of errors was retried and everything else was blamed
on the record: a KILL QUERY or max_statement_time sent valid records to
dead_letters and their receipts said `dead`.
"""
import time

import pytest

from deploy.processes import wait_for
from tests.e2e.helpers import FAST, HEADERS, get, metric, mysql_items, post_items, scalar, wait_receipt


@pytest.fixture()
def slow_trigger(mysql_trigger, stack):
    """A trigger that makes inserting the item 'slow' take 5 s (a real slow statement, no mock); yields its drop."""
    yield mysql_trigger("slow_insert", "BEFORE INSERT ON items FOR EACH ROW BEGIN "
                                       "IF NEW.k = 'slow' THEN DO SLEEP(5); END IF; END")
    stack.mariadb.sql("SET GLOBAL max_statement_time = 0")


def drain_insert(db):
    """The id of the drain's connection while its INSERT runs the trigger's sleep, else None."""
    with db.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'")
        row = cur.fetchone()
    return row[0] if row else None


def test_a_killed_query_is_retried_never_dead_lettered(web, db, rds, start_worker, slow_trigger):
    r = post_items(web, [("slow", {"v": 1})])
    assert r.status_code == 202, r.text
    receipt = r.json()
    start_worker(**FAST)
    query = wait_for(lambda: drain_insert(db), timeout=30, message="the drain's INSERT")
    with db.cursor() as cur:
        cur.execute(f"KILL QUERY {int(query)}")  # error 1317 for the drain: the server's doing, not the record's
    slow_trigger()
    assert wait_receipt(web, receipt["write_id"])["status"] == "persisted"
    assert mysql_items(db) == {"slow": {"v": 1}}
    assert scalar(db, "SELECT COUNT(*) FROM dead_letters") == 0
    assert get(f"{web.url}/api/v1/items/slow").json()["data"] == {"v": 1}
    assert metric(get(web.url + "/metrics").text, "spillway_drain_retries_total") >= 1


def test_a_statement_timeout_keeps_the_batch_queued_and_shows_in_readyz_until_it_goes_through(
        web, db, rds, stack, start_worker, slow_trigger):
    stack.mariadb.sql("SET GLOBAL max_statement_time = 1")  # error 1969 for every try of the batch
    receipt = post_items(web, [("slow", {"v": 2}), ("fine", {"v": 3})]).json()
    start_worker(**FAST)

    def retrying():
        body = get(web.url + "/readyz", headers=HEADERS).json()
        return body if body["checks"]["drain"]["retrying"] else None

    ready = wait_for(retrying, timeout=30, message="/readyz to show the drain retrying")
    assert ready["status"] == "degraded" and "1969" in ready["checks"]["drain"]["error"]
    assert metric(get(web.url + "/metrics").text, "spillway_drain_retrying") == 1
    time.sleep(3)  # several more tries, all refused by the server
    assert get(f"{web.url}/api/v1/writes/{receipt['write_id']}").json()["status"] == "queued"
    assert scalar(db, "SELECT COUNT(*) FROM dead_letters") == 0
    slow_trigger()  # the statement is quick again
    assert wait_receipt(web, receipt["write_id"])["status"] == "persisted"
    assert mysql_items(db) == {"slow": {"v": 2}, "fine": {"v": 3}}
    wait_for(lambda: not get(web.url + "/readyz", headers=HEADERS).json()["checks"]["drain"]["retrying"], timeout=40,
             message="/readyz to stop showing the retry")
