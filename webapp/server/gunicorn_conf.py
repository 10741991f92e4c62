"""gunicorn settings for Spillway's web server, read from the same environment as the app.

`spillway web` runs gunicorn with this file (-c <its path>), and the checkout's
gunicorn.conf.py runs it: gunicorn runs a config file afresh on every reload
(HUP), so settings changed in .env take effect then. Not imported as a module.
Run: gunicorn -c gunicorn.conf.py "webapp:create_app()"
"""
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.arbiter import Arbiter

from webapp.config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as err:
    sys.exit(f"spillway: {err}")

# --- Server socket -----------------------------------------------------------
# A large backlog holds connection bursts while workers accept them.
bind = f"{_settings.bind_host}:{_settings.port}"
backlog = _settings.web_backlog

# --- Worker processes ----------------------------------------------------------
# gevent workers: thousands of concurrent clients per process, each request a
# greenlet; PyMySQL and redis-py are pure Python, so their I/O is cooperative.
# The app is NOT preloaded: each worker imports it after gevent has patched the
# process, so every socket and lock it makes is cooperative and its own.
# gunicorn's gevent worker, accepting connections in batches of 8 instead of
# one per event-loop pass (webapp/server/gunicorn_worker.py says why).
workers = _settings.web_worker_count
worker_class = "webapp.server.gunicorn_worker.GeventWorker"
worker_connections = _settings.web_worker_connections
preload_app = False
timeout = _settings.web_timeout
graceful_timeout = _settings.web_graceful_timeout
keepalive = _settings.web_keepalive
# Recycle workers after this many requests (0: never); the jitter keeps them
# from restarting together.
max_requests = _settings.web_max_requests
max_requests_jitter = _settings.web_max_requests_jitter

# --- Request limits ------------------------------------------------------------
# Oversized request lines and headers are refused by gunicorn before the app runs.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# --- Logging -------------------------------------------------------------------
# The app writes one JSON line per request itself (webapp/server/observe.py: request
# id, route, status, duration), so gunicorn's access log is off; gunicorn's own
# messages go to stderr as JSON lines too.
accesslog = None
logger_class = "webapp.server.gunicorn_worker.Logger"  # gunicorn's own access record is never built
errorlog = "-"
loglevel = _settings.log_level
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "webapp.logs.JSONFormatter", "process_name": "web"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": _settings.log_level.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level.upper(), "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}

# --- Metrics ----------------------------------------------------------------------
# prometheus-client's multiprocess mode: each worker counts into files here and
# /metrics sums them, including workers that a reload replaced. Set before any
# worker imports prometheus_client; emptied when the master starts.
_metrics_dir = os.path.join(_settings.var_dir, "run", f"metrics-{_settings.port}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

# --- Process naming and control ---------------------------------------------------
proc_name = f"spillway-web-{_settings.port}"
# One control socket per instance (the default path is shared by every gunicorn
# of the user, so two instances would fight over it).
control_socket = os.path.join(_settings.var_dir, "run", f"gunicorn-{_settings.port}.ctl")


# --- Reloads ----------------------------------------------------------------------
# kill -HUP (supervisorctl signal HUP web) re-reads this file and .env: the
# documented way to rotate API_KEYS. A .env broken by that edit used to stop the
# master with a traceback, and supervisord then gave up on it (FATAL): the web was
# down. So a reload checks the settings first; a bad one is refused with one log
# line, and the workers serve on with what they have until a good edit and HUP.
def _refusing_bad_reloads(handle_hup: Callable[[Arbiter], None]) -> Callable[[Arbiter], None]:
    def handle(arbiter: Arbiter) -> None:
        try:
            load_settings().require("mysql_url", "redis_url", "api_keys")
        except ConfigError as err:
            arbiter.log.error("spillway: reload refused, the workers serve on with their settings: %s", err)
            return
        handle_hup(arbiter)

    setattr(handle, "spillway_checked", True)  # noqa: B010 (a marker on a function object)
    return handle


if not getattr(Arbiter.handle_hup, "spillway_checked", False):  # this file runs again at every reload
    Arbiter.handle_hup = _refusing_bad_reloads(Arbiter.handle_hup)


# --- Server hooks -------------------------------------------------------------------
def on_starting(server: Any) -> None:
    """Before forking workers: fresh metrics files; refuse unsafe servers or a budget that cannot fit.

    Not at import: gunicorn reads this file again on every reload (HUP), and the
    counts must carry on across reloads.
    """
    os.makedirs(os.path.dirname(control_socket), exist_ok=True)
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir)
    from webapp.storage.startup import check_servers  # after the metrics directory exists

    try:
        check_servers(_settings)
    except ConfigError as err:
        server.log.error("spillway: %s", err)
        sys.exit(3)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (reload, recycling, crash): keep its counts, drop its live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
