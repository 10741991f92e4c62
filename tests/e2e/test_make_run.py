"""`make run` end to end: deploy/run.py with the real supervisord.conf, on its own ports and var/."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from deploy.processes import ROOT, free_port, wait_for
from tests.e2e.helpers import MYSQL_PORT, REDIS_PORT, VAR
from webapp.config import documented_settings


def descendants(pid):
    """Every process below pid."""
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def answers(url, **kwargs):
    """True if url answers 200 (False while nothing listens yet)."""
    try:
        return requests.get(url, timeout=5, **kwargs).status_code == 200
    except requests.RequestException:
        return False


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def test_make_run_brings_everything_up_restarts_the_dead_and_ctrl_c_stops_it_all(tmp_path):
    var = VAR / "make-run"
    shutil.rmtree(var, ignore_errors=True)
    env_file = tmp_path / ".env"
    port, flower_port = free_port(), free_port()
    names = {env for env, _, _ in documented_settings()}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(SPILLWAY_ENV_FILE=str(env_file), VAR_DIR=str(var), PORT=str(port), FLOWER_PORT=str(flower_port),
               PRIVATE_MYSQL_PORT=str(MYSQL_PORT + 10), PRIVATE_REDIS_PORT=str(REDIS_PORT + 10),
               WEB_WORKERS="1", WORKER_CONCURRENCY="1", PYTHONUNBUFFERED="1")
    out = open(tmp_path / "run.out", "wb")  # noqa: SIM115 - the child writes it until the test ends
    run = subprocess.Popen([sys.executable, "-m", "deploy.run"], cwd=ROOT, env=env, stdout=out,
                           stderr=subprocess.STDOUT, start_new_session=True)  # its own group, like a terminal
    pids = set()
    try:
        wait_for(lambda: b"Spillway is up." in (tmp_path / "run.out").read_bytes(), timeout=120,
                 message="the banner")
        banner = (tmp_path / "run.out").read_text()
        key = re.search(r"API key\s+(\S+)", banner).group(1)
        assert key and f"API_KEYS={key}" in env_file.read_text()  # generated into the .env file
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/readyz", timeout=10).status_code == 200
        r = requests.post(base + "/api/v1/items", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                          json={"items": [{"key": "hello", "data": {"n": 1}}]})
        assert r.status_code == 202
        assert requests.get(base + "/api/v1/items/hello", timeout=10).json()["data"] == {"n": 1}
        flower_auth = tuple(re.search(r"FLOWER_BASIC_AUTH=(\S+)", env_file.read_text()).group(1).split(":", 1))
        wait_for(lambda: answers(f"http://127.0.0.1:{flower_port}/api/workers", auth=flower_auth), timeout=30,
                 message="Flower")
        pids = {run.pid, *descendants(run.pid)}
        servers = [int(p.read_text()) for p in (var / "run").glob("*.pid") if p.name in ("mariadb.pid", "redis.pid")]
        pids |= set(servers)
        assert len(servers) == 2
        # supervisord started without CRIT lines, and supervisorctl works as the docs write it (no environment).
        assert b"CRIT" not in (tmp_path / "run.out").read_bytes()
        assert "CRIT" not in (var / "log" / "supervisord.log").read_text()
        ctl = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(var / "run" / "supervisorctl.conf")]
        bare = {"PATH": "/usr/bin:/bin"}
        status = subprocess.run([*ctl, "status"], env=bare, capture_output=True, text=True)
        assert all(f"{name} " in status.stdout for name in ("web", "worker", "flower")), status.stdout + status.stderr
        # A program that dies is restarted by supervisord.
        web = int(subprocess.run([*ctl, "pid", "web"], env=bare, capture_output=True, text=True, check=True).stdout)
        os.kill(web, signal.SIGKILL)
        wait_for(lambda: subprocess.run([*ctl, "pid", "web"], env=bare, capture_output=True, text=True).stdout.strip()
                 not in ("", "0", str(web)), timeout=30, message="supervisord to restart the web program")
        wait_for(lambda: answers(base + "/healthz"), timeout=30, message="the web server to be restarted")
        pids |= set(descendants(run.pid))
        # Ctrl-C: the terminal sends SIGINT to the whole foreground group.
        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        run.wait(60)
        assert time.monotonic() - started < 30
        assert run.returncode == 0
        assert not [p for p in pids if alive(p)]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        out.close()
