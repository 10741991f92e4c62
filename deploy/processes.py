"""Live processes for tests and the bench: real gunicorn, Celery workers and Flower.

Every process is started in its own session and stopped by its pid (SIGTERM,
then SIGKILL after a grace period), never by name.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port():
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveProcess:
    """A subprocess with its output in a log file under var/test/log."""

    def __init__(self, name, argv, env, log_dir, cwd=ROOT):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - held for the process's life, closed by stop()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    @property
    def pid(self):
        """The process id (the master, for gunicorn and Celery)."""
        return self.proc.pid

    def alive(self):
        """True while the process runs."""
        return self.proc.poll() is None

    def log(self):
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def send_signal(self, sig):
        """Send a signal to the process (the master only)."""
        if self.alive():
            os.kill(self.proc.pid, sig)

    def children(self):
        """Pids of the direct children (gunicorn/Celery worker processes)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def stop(self, timeout=30, sig=signal.SIGTERM):
        """Stop gracefully, then kill; return the exit code."""
        if self.alive():
            children = self.children()
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            for pid in children:  # workers orphaned by a killed master
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()
        return self.proc.returncode

    def kill(self):
        """SIGKILL the master and all its children at once (a crash)."""
        for pid in [*self.children(), self.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


class WebServer(LiveProcess):
    """gunicorn -c gunicorn.conf.py, as in production."""

    def __init__(self, env, log_dir, wait=True, app="webapp:create_app()"):
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", app]
        super().__init__(f"web-{self.port}", argv, env, log_dir)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=30):
        """Wait until every worker answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.log()[-3000:]}")


class CeleryWorker(LiveProcess):
    """celery -A tasks worker, as supervisord runs it."""

    def __init__(self, env, log_dir, concurrency=2, name="w1"):
        argv = [str(BIN / "celery"), "-A", "tasks", "worker", "--loglevel=INFO",
                f"--concurrency={concurrency}", "-n", f"{name}-{time.monotonic_ns()}@%h",
                "--without-mingle", "--without-gossip"]
        super().__init__(f"worker-{name}", argv, env, log_dir)


class Flower(LiveProcess):
    """celery -A tasks flower with the project's Flower config."""

    def __init__(self, env, log_dir):
        self.port = int(env["FLOWER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(BIN / "celery"), "-A", "tasks", "flower", "--conf=deploy/flowerconfig.py"]
        super().__init__("flower", argv, env, log_dir)


def wait_for(predicate, timeout=30, interval=0.1, message="condition"):
    """Poll predicate() until it returns something truthy; return it or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
