"""The bench's stack, run the way `make run` runs it: deploy/run.py, supervisord, Flower, logs on.

Its own var/bench (and var/bench-ha) and ports, so a bench never touches a
running stack. The references (hello-world, naive, the seeds' Celery design)
run as plain gunicorn (and Celery) processes with the same gunicorn.conf.py,
while Spillway's own programs are stopped.
"""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from deploy.processes import BIN, ROOT, LiveProcess, WebServer, free_port, wait_for
from webapp.config import documented_settings, load_settings

VAR = ROOT / "var" / "bench"
API_KEY = "bench-key"


class Program:
    """A supervisord program of the bench stack (web or worker), seen from outside."""

    def __init__(self, stack, name, log_path, url=None):
        self.stack, self.name, self.log_path, self.url = stack, name, log_path, url

    @property
    def pid(self):
        """The program's main pid (gunicorn's or Celery's master)."""
        return int(self.stack.ctl("pid", self.name).stdout.strip() or 0)

    def children(self):
        """Its worker processes."""
        pid = self.pid  # one supervisorctl call
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self):
        self.stack.ctl("stop", self.name)

    def start(self):
        self.stack.ctl("start", self.name)


class BenchStack:
    """`make run` for the bench; references on demand; stop() ends everything it started."""

    def __init__(self, var=VAR, mysql_port=23307, redis_port=26380, ha=False, **overrides):
        self.var, self.ha = Path(var), ha
        # BENCH_MYSQL_PORT / BENCH_REDIS_PORT move it off ports another stack on this host already uses
        self.mysql_port = int(os.environ.get("BENCH_MYSQL_PORT", mysql_port))
        self.redis_port = int(os.environ.get("BENCH_REDIS_PORT", redis_port))
        self.overrides = overrides
        self.processes = []
        self.run = None
        self.env = self.settings = self.web = self.worker = None

    def start(self, fresh=True):
        """Start `make run` (deploy/run.py) on the bench's ports; return the settings it uses."""
        if fresh:
            shutil.rmtree(self.var, ignore_errors=True)
        self.var.mkdir(parents=True, exist_ok=True)
        env_file = self.var / ".env"
        env_file.write_text(f"API_KEYS={API_KEY}\nFLOWER_BASIC_AUTH=bench:bench\n"
                            f"PRIVATE_REDIS_PASSWORD=bench-redis-pw\n")
        names = {env for env, _, _ in documented_settings()}
        env = {k: v for k, v in os.environ.items() if k not in names}
        self.port, flower = free_port(), free_port()
        env.update(SPILLWAY_ENV_FILE=str(env_file), VAR_DIR=str(self.var), PORT=str(self.port),
                   FLOWER_PORT=str(flower), PRIVATE_MYSQL_PORT=str(self.mysql_port),
                   PRIVATE_REDIS_PORT=str(self.redis_port), PYTHONUNBUFFERED="1",
                   **{k: str(v) for k, v in self.overrides.items()})
        self.out = open(self.var / "make-run.out", "wb")  # noqa: SIM115 - closed by stop()
        args = ["--ha"] if self.ha else []
        self.run = subprocess.Popen([sys.executable, "-m", "deploy.run", *args], cwd=ROOT, env=env,
                                    stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        out = self.var / "make-run.out"
        wait_for(lambda: b"Spillway is up." in out.read_bytes() or self.run.poll() is not None, timeout=180,
                 message="make run to come up")
        if b"Spillway is up." not in out.read_bytes():
            raise RuntimeError(f"make run did not come up:\n{out.read_text()[-3000:]}")
        self.env = {**env, **_urls(self)}
        self.settings = load_settings({"mysql_url": self.env["MYSQL_URL"], "redis_url": self.env["REDIS_URL"],
                                       "api_keys": API_KEY, "redis_sentinels": ""})
        url = f"http://127.0.0.1:{self.port}"
        self.web = Program(self, "web", self.var / "log" / "web.log", url)
        self.worker = Program(self, "worker", self.var / "log" / "worker.log")
        return self.settings

    def ctl(self, *args):
        """supervisorctl on the bench's supervisord."""
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.var / "run" / "supervisorctl.conf"),
                               *args], capture_output=True, text=True)

    def server_pid(self, name):
        """The pid of a private server (redis, mariadb)."""
        return int((self.var / "run" / f"{name}.pid").read_text())

    def spillway(self, running):
        """Start or stop Spillway's own programs (web, worker, flower), to measure references alone."""
        self.ctl("start" if running else "stop", "worker", "web", "flower")
        if running:
            wait_for(lambda: _answers(self.web.url + "/healthz"), timeout=60, message="the web server")

    def reference(self, app, **overrides):
        """A reference WSGI app under gunicorn -c gunicorn.conf.py (the same settings)."""
        env = {**self.env, "PORT": str(free_port()), "REQUEST_LOG": "false",
               **{k: str(v) for k, v in overrides.items()}}
        server = WebServer(env, self.var / "log", app=app)
        self.processes.append(server)
        return server

    def celery(self, app, queue, concurrency=2):
        """A Celery worker of a reference app, on its own queue."""
        argv = [str(BIN / "celery"), "-A", app, "worker", "--loglevel=WARNING", f"--concurrency={concurrency}",
                "-Q", queue, "--without-mingle", "--without-gossip"]
        proc = LiveProcess(f"{queue}-worker", argv, self.env, self.var / "log")
        self.processes.append(proc)
        return proc

    def stop_references(self):
        """Stop every reference process started so far."""
        while self.processes:
            self.processes.pop().stop()

    def stop(self):
        """Stop everything: references, then `make run` (as Ctrl-C does)."""
        self.stop_references()
        if self.run is not None and self.run.poll() is None:
            os.killpg(self.run.pid, signal.SIGINT)
            try:
                self.run.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.run.pid, signal.SIGKILL)
        self.out.close()


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _urls(stack):
    """MYSQL_URL and REDIS_URL of the stack (the banner masks passwords: they are rebuilt from var/)."""
    from deploy.bootstrap import Stack

    settings = load_settings({"var_dir": str(stack.var), "private_mysql_port": stack.mysql_port,
                              "private_redis_port": stack.redis_port, "private_redis_password": "bench-redis-pw",
                              "mysql_url": "", "redis_url": ""})
    return Stack.from_settings(settings, ha=stack.ha).urls()
