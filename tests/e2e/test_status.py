"""`make status` (deploy/status.py) against the test stack: the queue, dead letters, the processes."""
import re
import subprocess
from urllib.parse import urlsplit

from deploy.processes import ROOT
from tests.e2e.helpers import post_items


def test_make_status_prints_the_queue_depth_and_the_dead_letters(web, db, base_env, stack):
    assert post_items(web, [(f"s{i}", {"i": i}) for i in range(24)]).status_code == 202  # no worker: it stays queued
    with db.cursor() as cur:
        cur.execute("INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at) "
                    "VALUES (1, 'w_status', 'items', '{}', 'made by the test', UTC_TIMESTAMP(6))")
    out = subprocess.run(["make", "-s", "status"], cwd=ROOT, env=base_env, capture_output=True, text=True, timeout=120)
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    assert re.search(r"^  queue +depth 24 records, .*oldest \d+\.\d s$", text, re.M), text
    assert re.search(r"^  dead letters +1 \(", text, re.M), text
    assert re.search(r"^  drain workers +0 alive$", text, re.M), text
    assert re.search(r"^  retrying +no$", text, re.M), text
    assert "accept to persist: no record persisted yet" in text
    assert "make run is not running" in text
    # URLs shown with their passwords masked
    assert re.search(r"^  Redis +redis://:\*\*\*@", text, re.M) and re.search(r"^  MySQL +mysql://\w+:\*\*\*@", text, re.M)
    assert stack.redis.password not in text and urlsplit(stack.mysql_url).password not in text
