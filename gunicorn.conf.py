"""gunicorn settings for Spillway's web server, read from the same environment as the app.

Run: gunicorn -c gunicorn.conf.py "webapp:create_app()"
"""
import os
import sys

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
# gunicorn's gevent worker, accepting connections in batches of 64 instead of
# one per event-loop pass (webapp/gunicorn_worker.py says why).
workers = _settings.web_worker_count
worker_class = "webapp.gunicorn_worker.GeventWorker"
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
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

# --- Process naming and control ---------------------------------------------------
proc_name = f"spillway-web-{_settings.port}"
# One control socket per instance (the default path is shared by every gunicorn
# of the user, so two instances would fight over it).
control_socket = os.path.join(_settings.var_dir, "run", f"gunicorn-{_settings.port}.ctl")


# --- Server hooks -------------------------------------------------------------------
def on_starting(server):
    """Before forking workers: refuse to start if the MySQL connection budget cannot fit."""
    from webapp.db import BudgetError, check_connection_budget

    os.makedirs(os.path.dirname(control_socket), exist_ok=True)
    try:
        check_connection_budget(_settings)
    except BudgetError as err:
        server.log.error("spillway: %s", err)
        sys.exit(3)
