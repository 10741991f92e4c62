"""Celery settings, read from the same environment as the app (webapp/config.py)."""
from webapp.config import load_settings

_settings = load_settings().require("redis_url")

# --- Broker ---------------------------------------------------------------------
# Drain tasks travel through the same Redis as the write queue. The queued
# writes themselves are NOT Celery messages: they sit in a Redis Stream and are
# only acknowledged there after MySQL committed them (see tasks/drain.py).
broker_url = _settings.redis_url
broker_connection_retry_on_startup = True
task_default_queue = "spillway"
task_serializer = "json"
accept_content = ["json"]
