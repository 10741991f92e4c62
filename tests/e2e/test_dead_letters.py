"""Dead letters you can inspect and replay: over HTTP (admin scope), from the command line, visible in Flower."""
import json

import pytest
import requests

from deploy.processes import wait_for
from tests.e2e.helpers import (
    API_KEY,
    FAST,
    OTHER_KEY,
    flower_get,
    get,
    item_url,
    mysql_items,
    post_items,
    scalar,
    wait_drained,
)

ADMIN = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture()
def bad_data_trigger(mysql_trigger):
    """MySQL rejects any item whose data says "bad" (a trigger's SIGNAL: a real rejection, no mock); yields its drop."""
    return mysql_trigger("reject_bad", "BEFORE INSERT ON items FOR EACH ROW BEGIN "
                                       "IF NEW.data LIKE '%\"bad\"%' THEN SIGNAL SQLSTATE '45000' "
                                       "SET MESSAGE_TEXT = 'bad data'; END IF; END")


def receipt(web, write_id):
    return get(f"{web.url}/api/v1/writes/{write_id}").json()


def test_a_rejected_record_is_listed_redriven_after_the_fix_and_a_newer_write_still_wins(
        web, db, rds, start_worker, start_flower, bad_data_trigger):
    worker = start_worker(**FAST)
    flower = start_flower()
    first = post_items(web, [("k", {"v": "bad"}), ("other", {"v": "bad"}), ("fine", {"v": 1})]).json()
    wait_for(lambda: receipt(web, first["write_id"])["status"] == "dead", timeout=60, message="the dead letters")
    assert receipt(web, first["write_id"])["dead"] == 2
    # Listed with the reason, for admin keys only.
    listed = requests.get(f"{web.url}/api/v1/dead-letters", params={"write_id": first["write_id"]}, headers=ADMIN,
                          timeout=10).json()
    assert [(d["record"]["key"], json.loads(d["record"]["data"])) for d in listed["dead_letters"]] == [
        ("k", {"v": "bad"}), ("other", {"v": "bad"})]
    assert all("bad data" in d["reason"] and "1644" in d["reason"] for d in listed["dead_letters"])
    assert requests.get(f"{web.url}/api/v1/dead-letters", headers={"Authorization": f"Bearer {OTHER_KEY}"},
                        timeout=10).status_code == 403
    assert requests.get(f"{web.url}/api/v1/dead-letters", timeout=10).status_code == 401
    # A newer write of "k" lands before the redrive.
    newer = post_items(web, [("k", {"v": "newer"})]).json()
    wait_for(lambda: receipt(web, newer["write_id"])["status"] == "persisted", timeout=60, message="the newer write")
    # The cause is removed; a dry run counts, then the redrive (a Celery task) sends both back.
    bad_data_trigger()
    dry = requests.post(f"{web.url}/api/v1/dead-letters/redrive", headers=ADMIN, timeout=10,
                        json={"write_id": first["write_id"], "dry_run": True})
    assert dry.status_code == 200 and dry.json()["matched"] == 2
    r = requests.post(f"{web.url}/api/v1/dead-letters/redrive", headers=ADMIN, timeout=10,
                      json={"write_id": first["write_id"]})
    assert r.status_code == 202 and r.json()["matched"] == 2 and r.json()["task_id"]
    wait_for(lambda: receipt(web, first["write_id"])["status"] == "persisted", timeout=60,
             message="the receipt to move from dead to persisted")
    assert receipt(web, first["write_id"]) | {"accepted_at": None, "persisted_at": None} == {
        "write_id": first["write_id"], "kind": "items", "status": "persisted", "accepted": 3, "persisted": 3,
        "dead": 0, "accepted_at": None, "persisted_at": None}
    stored = mysql_items(db)
    assert stored["k"] == {"v": "newer"}  # the redriven record kept its older version: the newer write wins
    assert stored["other"] == {"v": "bad"}  # nothing newer: the redriven record is the item now
    assert get(item_url(web.url, "k")).json()["data"] == {"v": "newer"}
    assert get(item_url(web.url, "other")).json()["data"] == {"v": "bad"}
    assert scalar(db, "SELECT COUNT(*) FROM dead_letters") == 0
    # Flower shows the redrive as a task; /metrics counts it.
    tasks = flower_get(flower.url + "/api/tasks", taskname="spillway.redrive")
    assert tasks and worker.alive()
    page = get(web.url + "/metrics").text
    assert 'spillway_dead_letters_redriven_total{kind="items"} 2.0' in page


def test_a_redriven_record_that_fails_again_stays_dead_with_the_new_reason(web, db, rds, start_worker,
                                                                            bad_data_trigger):
    start_worker(**FAST)
    write = post_items(web, [("k", {"v": "bad"})]).json()
    wait_for(lambda: receipt(web, write["write_id"])["status"] == "dead", timeout=60, message="a dead letter")
    with db.cursor() as cur:  # the cause changes but is not gone
        cur.execute("DROP TRIGGER reject_bad")
        cur.execute("CREATE TRIGGER reject_bad BEFORE INSERT ON items FOR EACH ROW BEGIN "
                    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'still bad'; END")
    r = requests.post(f"{web.url}/api/v1/dead-letters/redrive", headers=ADMIN, timeout=10,
                      json={"filter": {"kind": "items"}})
    assert r.status_code == 202
    wait_for(lambda: "still bad" in (scalar(db, "SELECT MAX(reason) FROM dead_letters") or ""), timeout=60,
             message="the new reason")
    wait_drained(rds)
    assert receipt(web, write["write_id"])["status"] == "dead"


def test_dead_letters_from_the_command_line(web, db, rds, start_worker, runner, bad_data_trigger):
    start_worker(**FAST)
    write = post_items(web, [("k", {"v": "bad"}), ("j", {"v": "bad"})]).json()
    wait_for(lambda: receipt(web, write["write_id"])["status"] == "dead", timeout=60, message="dead letters")
    listed = runner.invoke(args=["dead-letters", "list", "--write-id", write["write_id"]])
    assert listed.exit_code == 0 and listed.output.count("bad data") == 2
    first_id = int(listed.output.split()[0])
    shown = runner.invoke(args=["dead-letters", "show", str(first_id)])
    assert json.loads(shown.output)["write_id"] == write["write_id"]
    assert "choose dead letters" in runner.invoke(args=["dead-letters", "purge"]).output
    assert "1 dead letters would be" in runner.invoke(args=["dead-letters", "redrive", "--id", str(first_id),
                                                            "--dry-run"]).output
    bad_data_trigger()
    assert "Redrove 1" in runner.invoke(args=["dead-letters", "redrive", "--id", str(first_id)]).output
    assert "Purged 1" in runner.invoke(args=["dead-letters", "purge", "--write-id", write["write_id"]]).output
    wait_drained(rds)
    assert scalar(db, "SELECT COUNT(*) FROM dead_letters") == 0
    assert set(mysql_items(db)) == {"k"}  # one redriven, one purged for good


def test_purging_needs_a_filter_or_all_and_unreadable_entries_are_listed_and_purged(web, rds):
    r = requests.delete(f"{web.url}/api/v1/dead-letters", headers=ADMIN, timeout=10)
    assert r.status_code == 422
    assert requests.delete(f"{web.url}/api/v1/dead-letters", params={"all": "true"}, headers=ADMIN,
                           timeout=10).json() == {"purged": 0}
    entry = rds.xadd("spillway:queue:unreadable", {"w": "w_x", "k": "items", "entry": "1-0", "reason": "broken"})
    listed = requests.get(f"{web.url}/api/v1/dead-letters/unreadable", headers=ADMIN, timeout=10).json()
    assert [(e["id"], e["reason"]) for e in listed["entries"]] == [(entry.decode(), "broken")]
    assert requests.delete(f"{web.url}/api/v1/dead-letters/unreadable", params={"ids": entry.decode()},
                           headers=ADMIN, timeout=10).json() == {"purged": 1}
