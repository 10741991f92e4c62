"""WORKER_NICE really lowers the drain's CPU share, autogroup scheduling included."""
import os
import subprocess
import sys

import pytest

from webapp.config import ROOT

AUTOGROUP = "/proc/self/autogroup"


@pytest.mark.skipif(not os.path.exists(AUTOGROUP), reason="the kernel has no autogroup scheduling")
def test_a_drain_worker_leading_its_own_session_renices_its_scheduling_group_too():
    # Under autogroup, os.nice alone leaves a session leader a fair share of the CPUs against the web's session.
    probe = ("import os; from tasks.celery import lower_priority; lower_priority(7); "
             "print(os.nice(0), open('/proc/self/autogroup').read().split()[-1])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         start_new_session=True, env={**os.environ, "SPILLWAY_ENV_FILE": os.devnull}).stdout
    assert out.split() == ["7", "7"]
