"""The Celery application: configuration from celeryconfig, per-process connections, JSON logs."""
import logging
import os
import time

from celery import Celery
from celery.signals import (after_setup_logger, after_setup_task_logger, task_postrun, task_prerun, worker_init,
                            worker_process_init)

from webapp.config import load_settings
from webapp.logs import JSONFormatter
from webapp.services import Services

log = logging.getLogger(__name__)

app = Celery("spillway", include=["tasks.drain"])
app.config_from_object("celeryconfig")

# Connections of this process, made on first use (never at import).
services = Services(load_settings(), role="worker")


@worker_process_init.connect
def _forget_inherited_connections(**_):
    """Each pool process makes its own connections; the parent's are not shared."""
    services.reset()


@worker_init.connect
def _prepare_worker(**_):
    """Refuse to start if the MySQL connection budget cannot fit; lower the drain's CPU priority.

    The drain is background work: where it shares CPUs with the web server, a
    burst of requests should get them first (the queue absorbs the writes) and
    the drain catches up as soon as the burst eases. Pool processes inherit it.
    """
    from webapp.db import check_connection_budget

    check_connection_budget(services.settings)
    if services.settings.worker_nice:
        os.nice(services.settings.worker_nice)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger, **_):
    """Celery's log lines as JSON, like the web's."""
    for handler in logger.handlers:
        handler.setFormatter(JSONFormatter("worker"))


_started = {}


@task_prerun.connect
def _task_started(task_id, **_):
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id, task, retval=None, state=None, **_):
    """One JSON line per task: id, name, state, duration and what it did."""
    seconds = time.perf_counter() - _started.pop(task_id, time.perf_counter())
    fields = {"event": "task", "task_id": task_id, "task": task.name, "state": state,
              "duration_ms": round(seconds * 1000, 1)}
    if isinstance(retval, dict):
        fields.update(retval)
    log.info("task %s %s", task.name, state, extra={"fields": fields})
