"""The bench's own stack: private MariaDB and Redis under var/bench, gunicorn and Celery on demand.

Separate ports and data from `make run` and `make test`, so a bench never
touches a running stack and always starts from a known state.
"""
import os
from pathlib import Path

from deploy.bootstrap import Stack
from deploy.processes import CeleryWorker, WebServer, free_port
from webapp.config import ROOT, documented_settings, load_settings

VAR = ROOT / "var" / "bench"
API_KEY = "bench-key"


class BenchStack:
    """Servers plus live processes for the bench; stop() ends everything it started."""

    def __init__(self, mysql_port=23307, redis_port=26380):
        self.servers = Stack(VAR, mysql_port=mysql_port, redis_port=redis_port, max_connections=300)
        self.processes = []
        self.env = None
        self.settings = None

    def start(self):
        """Start MariaDB and Redis; return the settings processes will use."""
        urls = self.servers.start()
        names = {env for env, _, _ in documented_settings()}
        self.env = {k: v for k, v in os.environ.items() if k not in names}
        self.env.update(urls, SPILLWAY_ENV_FILE=os.devnull, API_KEYS=API_KEY, VAR_DIR=str(VAR),
                        LOG_LEVEL="warning", FLOWER_BASIC_AUTH="bench:bench", PYTHONUNBUFFERED="1")
        self.settings = load_settings({"mysql_url": urls["MYSQL_URL"], "redis_url": urls["REDIS_URL"],
                                       "api_keys": API_KEY})
        return self.settings

    def web(self, app="webapp:create_app()", **overrides):
        """Start a gunicorn (the app, or a reference WSGI app) with the production config."""
        env = {**self.env, "PORT": str(free_port()), **{k: str(v) for k, v in overrides.items()}}
        server = WebServer(env, Path(VAR) / "log", app=app)
        self.processes.append(server)
        return server

    def worker(self, concurrency=None, **overrides):
        """Start a Celery drain worker."""
        env = {**self.env, **{k: str(v) for k, v in overrides.items()}}
        worker = CeleryWorker(env, Path(VAR) / "log", concurrency=concurrency or os.cpu_count() or 2, name="bench")
        self.processes.append(worker)
        return worker

    def stop_processes(self):
        """Stop every gunicorn and Celery process started so far."""
        while self.processes:
            self.processes.pop().stop()

    def stop(self):
        """Stop everything, servers included."""
        self.stop_processes()
        self.servers.stop()
