"""`make run` end to end: deploy/run.py with the real supervisord.conf, on its own ports and var/.

Stops cleanly however it is stopped (Ctrl-C, SIGHUP, a vanished stdout), finds
what an earlier run left, and heals a private server that crashed.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis as redis_lib
import requests
from dotenv import dotenv_values

from deploy.processes import ROOT, free_port, wait_for
from deploy.run import stack_processes
from tests.e2e.helpers import MYSQL_PORT, REDIS_PORT, VAR
from webapp.config import documented_settings, load_settings

RUN_VAR = VAR / "make-run"


def answers(url, **kwargs):
    """True if url answers 200 (False while nothing listens yet)."""
    try:
        return requests.get(url, timeout=5, **kwargs).status_code == 200
    except requests.RequestException:
        return False


class MakeRun:
    """deploy/run.py in its own process group, as a terminal runs `make run`."""

    def __init__(self, tmp_path, stdout=None, args=(), **settings):
        self.env_file = tmp_path / ".env"
        self.port, self.flower_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        names = {env for env, _, _ in documented_settings()}
        env = {k: v for k, v in os.environ.items() if k not in names}
        env.update(SPILLWAY_ENV_FILE=str(self.env_file), VAR_DIR=str(RUN_VAR), PORT=str(self.port),
                   FLOWER_PORT=str(self.flower_port), PRIVATE_MYSQL_PORT=str(MYSQL_PORT + 10),
                   PRIVATE_REDIS_PORT=str(REDIS_PORT + 10), WEB_WORKERS="1", WORKER_CONCURRENCY="1",
                   DRAIN_TASK_SECONDS="2", WRITE_CLAIM_IDLE="3", DB_WRITE_TIMEOUT="2", PYTHONUNBUFFERED="1")
        env.update({k: str(v) for k, v in settings.items()})
        self.env = env
        self.out_path = tmp_path / f"run-{time.monotonic_ns()}.out"
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - the child writes it until stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "deploy.run", *args], cwd=ROOT, env=env,
                                     stdout=stdout or self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        return self.out_path.read_text(errors="replace")

    def wait_up(self):
        wait_for(lambda: "Spillway is up." in self.output() or self.proc.poll() is not None, timeout=120,
                 message="the banner")
        assert "Spillway is up." in self.output(), self.output()[-3000:]

    def settings(self):
        """The .env `make run` wrote."""
        return dotenv_values(self.env_file)

    def key(self):
        return self.settings()["API_KEYS"].split(",")[0].split(":")[0]

    def ctl(self, *args):
        ctl = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(RUN_VAR / "run" / "supervisorctl.conf")]
        return subprocess.run([*ctl, *args], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)

    def stop_with(self, sig, timeout=30):
        """Signal the whole group (as a terminal does); return the seconds until everything stopped."""
        started = time.monotonic()
        os.killpg(self.proc.pid, sig)
        self.proc.wait(60)
        wait_for(lambda: not stack_processes(RUN_VAR.resolve()), timeout=60, message="every process to stop")
        return time.monotonic() - started

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        servers = [int(p.read_text()) for p in (RUN_VAR / "run").glob("*.pid") if p.read_text().strip().isdigit()]
        servers = [pid for pid in servers if _cwd_in(pid, RUN_VAR)]  # a stale pid file may name another process
        for pid in [*stack_processes(RUN_VAR.resolve()), *servers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()


def _cwd_in(pid, directory):
    try:
        return Path(f"/proc/{pid}/cwd").resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


@pytest.fixture()
def make_run(tmp_path):
    """Factory: start `make run` (deploy/run.py); everything it started is gone afterwards."""
    shutil.rmtree(RUN_VAR, ignore_errors=True)
    runs = []

    def start(**kwargs):
        run = MakeRun(tmp_path, **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def test_make_run_brings_everything_up_restarts_the_dead_and_ctrl_c_stops_it_all(make_run):
    run = make_run()
    run.wait_up()
    settings = run.settings()
    key = run.key()
    assert settings["API_KEYS"] and settings["FLOWER_BASIC_AUTH"] and settings["PRIVATE_REDIS_PASSWORD"]
    assert answers(run.base + "/readyz")
    r = requests.post(run.base + "/api/v1/items", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                      json={"items": [{"key": "hello", "data": {"n": 1}}]})
    assert r.status_code == 202
    assert requests.get(run.base + "/api/v1/items/hello", timeout=10).json()["data"] == {"n": 1}
    wait_for(lambda: answers(f"http://127.0.0.1:{run.flower_port}/api/workers",
                             auth=tuple(settings["FLOWER_BASIC_AUTH"].split(":", 1))), timeout=30, message="Flower")
    # No secret in the banner, on any process's command line, or in a file others can read.
    secrets = [key, settings["PRIVATE_REDIS_PASSWORD"], settings["FLOWER_BASIC_AUTH"].split(":", 1)[1],
               (RUN_VAR / "mariadb.password").read_text().strip()]
    banner = run.output()
    assert not [s for s in secrets if s in banner]
    for pid in stack_processes(RUN_VAR.resolve()):
        command = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        assert not [s for s in secrets if s in command], command
    assert oct(RUN_VAR.stat().st_mode & 0o777) == "0o700"
    # supervisord started without CRIT lines; supervisorctl works as the docs write it (no environment).
    assert "CRIT" not in banner and "CRIT" not in (RUN_VAR / "log" / "supervisord.log").read_text()
    status = run.ctl("status").stdout
    for name in ("mariadb", "redis", "web", "worker", "flower"):
        assert re.search(rf"^{name}\s+RUNNING", status, re.M), status
    # A program that dies is restarted by supervisord.
    web = int(run.ctl("pid", "web").stdout)
    os.kill(web, signal.SIGKILL)
    wait_for(lambda: run.ctl("pid", "web").stdout.strip() not in ("", "0", str(web)), timeout=30,
             message="supervisord to restart the web program")
    wait_for(lambda: answers(run.base + "/healthz"), timeout=30, message="the web server to be restarted")
    # Ctrl-C: the terminal sends SIGINT to the whole foreground group.
    assert run.stop_with(signal.SIGINT) < 30
    assert run.proc.returncode == 0


class Writers:
    """Threads posting 24-item batches until stopped; they remember what got a 202."""

    def __init__(self, base, key, threads=50):
        self.base, self.key = base, key
        self.accepted, self.last_ok = {}, time.monotonic()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(threads)]
        for t in self.threads:
            t.start()

    def write(self, n):
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            items = [{"key": f"w{n:02d}-{i:05d}-{j:02d}", "data": {"n": n, "i": i, "j": j}} for j in range(24)]
            try:
                r = session.post(self.base + "/api/v1/items", json={"items": items}, timeout=10,
                                 headers={"Authorization": f"Bearer {self.key}"})
            except requests.RequestException:
                r = None
            if r is not None and r.status_code == 202:
                with self.lock:
                    self.accepted[r.json()["write_id"]] = items
                    self.last_ok = time.monotonic()
            i += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.mark.parametrize("server", ["redis", "mariadb"])
def test_a_crashed_private_server_is_back_within_seconds_and_every_202_lands(make_run, server):
    run = make_run()
    run.wait_up()
    writers = Writers(run.base, run.key())
    time.sleep(2)
    pid = int((RUN_VAR / "run" / f"{server}.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # a crash: the OOM killer, a bug
    killed = time.monotonic()
    wait_for(lambda: writers.last_ok > killed + 1, timeout=30, message="writes to be accepted again")
    back_after = writers.last_ok - killed
    time.sleep(2)
    writers.finish()
    assert back_after < 15, back_after  # with no restart of anything but the server
    assert writers.accepted
    # Every 202 reaches MySQL, exactly once.
    with requests.Session() as s:
        def persisted():
            return all(s.get(f"{run.base}/api/v1/writes/{w}", timeout=10).json()["status"] == "persisted"
                       for w in list(writers.accepted)[-50:])
        wait_for(persisted, timeout=120, interval=1, message="the drain to persist the writes")
    out = subprocess.run(["mariadb", f"--defaults-file={RUN_VAR / 'mariadb.cnf'}", "--user=root", "--batch",
                          "--skip-column-names", "spillway"], input="SELECT k FROM items WHERE k LIKE 'w%';",
                         capture_output=True, text=True, check=True).stdout.split()
    expected = {item["key"] for items in writers.accepted.values() for item in items}
    assert expected <= set(out)
    assert run.stop_with(signal.SIGINT) < 30


def test_the_terminal_closed_sighup_stops_everything_within_30_s(make_run):
    run = make_run()
    run.wait_up()
    assert len(stack_processes(RUN_VAR.resolve())) >= 5
    assert run.stop_with(signal.SIGHUP) < 30


def test_a_vanished_stdout_stops_everything_within_30_s(make_run):
    reader, writer = os.pipe()
    run = make_run(stdout=writer)  # `make run | tee log`
    os.close(writer)
    tee = open(reader, "rb")  # noqa: SIM115 - closed below: the reader (tee) goes away
    wait_for(lambda: b"Spillway is up." in tee.read1(65536), timeout=120, message="the banner")
    tee.close()  # tee killed
    started = time.monotonic()
    run.proc.wait(60)
    wait_for(lambda: not stack_processes(RUN_VAR.resolve()), timeout=60, message="every process to stop")
    assert time.monotonic() - started < 30


def test_a_second_run_names_a_live_one_and_a_later_run_stops_what_a_crashed_one_left(make_run):
    first = make_run()
    first.wait_up()
    second = make_run()
    assert second.proc.wait(60) == 1
    assert "already running from this checkout" in second.output()
    # The first run crashes: run.py and supervisord are killed, their programs and servers keep running.
    left = [*stack_processes(RUN_VAR.resolve()), int((RUN_VAR / "run" / "redis.pid").read_text())]
    supervisord = int((RUN_VAR / "run" / "supervisord.pid").read_text())
    os.kill(first.proc.pid, signal.SIGKILL)
    os.kill(supervisord, signal.SIGKILL)
    time.sleep(0.5)
    assert len(stack_processes(RUN_VAR.resolve())) >= 5  # orphans: web, worker, flower, MariaDB, Redis
    third = make_run()
    third.wait_up()  # not a crash loop on the taken ports
    assert "left by an earlier run of this checkout" in third.output()
    assert not [pid for pid in left if pid in stack_processes(RUN_VAR.resolve())]
    assert third.stop_with(signal.SIGINT) < 30


def test_make_run_ha_runs_a_replica_and_three_sentinels_and_follows_a_failover(make_run):
    run = make_run(args=["--ha"])
    run.wait_up()
    status = run.ctl("status").stdout
    for name in ("redis", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert re.search(rf"^{name}\s+RUNNING", status, re.M), status
    assert "redis+sentinel://:***@" in run.output()  # the app finds the primary through the Sentinels
    headers = {"Authorization": f"Bearer {run.key()}"}
    sentinel = redis_lib.Redis(port=REDIS_PORT + 10 + 20000, password=run.settings()["PRIVATE_REDIS_PASSWORD"])
    wait_for(lambda: any(r.get("master-link-status") == "ok" for r in sentinel.sentinel_slaves("spillway")),
             timeout=40, interval=0.5, message="the Sentinels to know the replica")
    # The primary fails over to the replica: stop it for longer than the Sentinels wait (2 s).
    old = sentinel.sentinel_get_master_addr_by_name("spillway")[1]
    run.ctl("stop", "redis")
    wait_for(lambda: sentinel.sentinel_get_master_addr_by_name("spillway")[1] != old, timeout=30, interval=0.5,
             message="a failover")
    run.ctl("start", "redis")  # back as a replica of the new primary
    wait_for(lambda: requests.post(run.base + "/api/v1/items", headers=headers, timeout=10,
                                   json={"items": [{"key": "after", "data": {"n": 2}}]}).status_code == 202,
             timeout=30, interval=0.5, message="writes on the new primary")
    assert requests.get(run.base + "/api/v1/items/after", timeout=10).json()["data"] == {"n": 2}
    sentinel.close()
    assert run.stop_with(signal.SIGINT) < 30


def test_make_run_ha_sentinel_failover_under_8_writers_stores_every_202_exactly_once(make_run):
    from tests.cluster.cluster import Writers, audit

    run = make_run(args=["--ha"])
    run.wait_up()
    sentinel = redis_lib.Redis(port=REDIS_PORT + 10 + 20000, password=run.settings()["PRIVATE_REDIS_PASSWORD"])
    wait_for(lambda: any(r.get("master-link-status") == "ok" for r in sentinel.sentinel_slaves("spillway")),
             timeout=40, interval=0.5, message="the Sentinels to know the replica")
    writers = Writers([run.base], f"ha-{time.time_ns()}", threads=8, key=run.key())
    try:
        wait_for(lambda: len(writers.accepted) > 20, timeout=30, message="writes")
        old = sentinel.sentinel_get_master_addr_by_name("spillway")[1]
        sentinel.execute_command("SENTINEL", "FAILOVER", "spillway")  # the planned failover docs/scaling.md gives
        wait_for(lambda: sentinel.sentinel_get_master_addr_by_name("spillway")[1] != old, timeout=30, interval=0.2,
                 message="the failover")
        since = time.monotonic()
        wait_for(lambda: writers.last_202 > since, timeout=60, message="writes on the new primary")
        time.sleep(2)
    finally:
        writers.finish()
    settings = _settings(run)
    primary = redis_lib.Redis(port=int(sentinel.sentinel_get_master_addr_by_name("spillway")[1]),
                              password=run.settings()["PRIVATE_REDIS_PASSWORD"])
    wait_for(lambda: int(primary.get("spillway:queue:depth") or 0) == 0, timeout=60, message="the queue to drain")
    found = audit(settings, run.base, writers)
    assert found["writes"] > 50, found
    assert (found["lost"], found["doubled"], found["went_back"], found["receipts_missing"]) == (0, 0, 0, 0), found
    sentinel.close()
    primary.close()
    assert run.stop_with(signal.SIGINT) < 30


def _settings(run):
    """The settings of a make run-ha stack, with the URLs of its private servers (the banner masks them)."""
    from deploy.bootstrap import Stack

    found = load_settings({"var_dir": str(RUN_VAR), "private_mysql_port": MYSQL_PORT + 10,
                           "private_redis_port": REDIS_PORT + 10, "mysql_url": "", "redis_url": "",
                           "private_redis_password": run.settings()["PRIVATE_REDIS_PASSWORD"]})
    urls = Stack.from_settings(found, ha=True).urls()
    return load_settings({"mysql_url": urls["MYSQL_URL"], "redis_url": urls["REDIS_URL"]})
