"""Celery Flower settings: `celery -A tasks flower --conf=deploy/flowerconfig.py`.

Flower only listens on 127.0.0.1 and refuses to start without FLOWER_BASIC_AUTH,
which is read here rather than passed on the command line (where `ps` shows it).
"""
import sys

from webapp.config import ConfigError, load_settings

try:
    _settings = load_settings().require("flower_basic_auth")
except ConfigError as err:
    sys.exit(f"spillway: {err}")

address = "127.0.0.1"
port = _settings.flower_port
basic_auth = [_settings.flower_basic_auth]
# Tasks kept in memory for the task list. An idle drain task stays up to
# DRAIN_IDLE_TASK_SECONDS (a row a minute per slot), so the list covers days of an
# idle stack and hours of a busy one (under load, a row every DRAIN_TASK_SECONDS per slot).
max_tasks = 10000
# The result column: what each drain did (rows written, dead letters, lag, status),
# so the tasks that wrote something can be told from the idle ones at a glance.
tasks_columns = "name,state,result,received,runtime,worker"
