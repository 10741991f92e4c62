"""What an operator sees in Flower: few rows from an idle drain, and what each drain task wrote."""
import ast
import time

import requests

from tests.e2e.helpers import FAST, FLOWER_PASSWORD, FLOWER_USER, flower_get, post_items, wait_for


def _drains(flower):
    found = flower_get(flower.url + "/api/tasks", taskname="spillway.drain") or {}
    return [t for t in found.values() if t.get("received")]


def test_an_idle_drain_adds_a_row_per_slot_now_and_then_and_each_row_says_what_it_wrote(
        web, rds, start_worker, start_flower):
    # Before: a task per slot every DRAIN_TASK_SECONDS (2 s here), each "0 rows", whatever the load.
    start_worker(**FAST, DRAIN_IDLE_TASK_SECONDS=20)
    flower = start_flower()
    wait_for(lambda: len(_drains(flower)) >= 2, timeout=60, message="Flower to list drain tasks")
    since = time.time()
    time.sleep(30)
    idle = [t for t in _drains(flower) if t["received"] >= since]
    # Two slots, a task each per 20 s idle (rounds of 2 s: about 20 s), one more each for the window's edges
    # and one for the retention run (a task waiting in Celery's queue ends an idle drain early): at most 10.
    # Before, about 2 x 30 / 2 = 30.
    assert len(idle) <= 10, [(t["received"] - since, t.get("result")) for t in idle]

    post_items(web, [(f"f{i}", {"i": i}) for i in range(7)])

    def wrote():
        for task in _drains(flower):
            if task.get("state") == "SUCCESS" and task.get("result"):
                result = ast.literal_eval(task["result"])
                if result.get("rows"):
                    return result
        return None

    result = wait_for(wrote, timeout=60, message="a drain task that wrote something")
    assert result["rows"] == 7 and result["dead"] == 0 and result["status"] == "ok", result
    assert {"lag_ms_max", "lag_ms_avg", "batches"} <= set(result)
    page = requests.get(flower.url + "/tasks", auth=(FLOWER_USER, FLOWER_PASSWORD), timeout=10).text
    assert 'data-column="result"' in page, "the task list shows each task's result"
