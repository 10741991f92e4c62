"""The Celery application: configuration from webapp.celeryconfig, per-process storage, JSON logs.

A worker process never imports Flask or gevent: tasks use webapp.storage only.
"""
import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)

from webapp.config import ConfigError, load_settings
from webapp.logs import JSONFormatter
from webapp.storage.services import Services
from webapp.storage.startup import check_servers

log = logging.getLogger(__name__)

app = Celery("spillway", include=["tasks.drain", "tasks.redrive", "tasks.retention"])
app.config_from_object("webapp.celeryconfig")

# Storage of this process, made on first use (never at import).
services = Services(load_settings(), role="worker")


@worker_process_init.connect
def _forget_inherited_connections(**_: Any) -> None:
    """Each pool process makes its own connections; the parent's are not shared."""
    services.reset()


@worker_init.connect
def _prepare_worker(**_: Any) -> None:
    """Refuse unsafe servers or a budget that cannot fit (exit 3); lower the drain's CPU priority.

    The drain is background work: where it shares CPUs with the web server, a
    burst of requests should get them first (the queue absorbs the writes) and
    the drain catches up as soon as the burst eases. Pool processes inherit it.
    """
    try:
        check_servers(services.settings)
    except ConfigError as err:
        log.critical("spillway: %s", err)
        raise SystemExit(3) from None  # Celery logs and ignores an Exception from a signal handler
    if services.settings.worker_nice:
        lower_priority(services.settings.worker_nice)


def lower_priority(nice: int) -> None:
    """Renice this process (pool processes inherit it), and its session's scheduling group if it leads one.

    With autogroup scheduling (kernel.sched_autogroup_enabled, on by default in
    many kernels) niceness only ranks processes within one session; each session
    gets a fair share of the CPUs as a whole. A worker that leads its own session
    (under systemd, or started with setsid) would so still take half the CPUs
    from the web: measured here, a drain at nice 10 in its own session took 0.46
    of 2 cores during a burst of POSTs. Under supervisord the programs share one
    session, and plain niceness works.
    """
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        try:
            Path("/proc/self/autogroup").write_text(str(nice))
        except OSError:  # no autogroup support in this kernel
            pass


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger: logging.Logger, **_: Any) -> None:
    """Celery's log lines as JSON, like the web's."""
    for handler in logger.handlers:
        handler.setFormatter(JSONFormatter("worker"))


_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id: str, task: Any, retval: Any = None, state: str | None = None, **_: Any) -> None:
    """One JSON line per task: id, name, state, duration and what it did."""
    seconds = time.perf_counter() - _started.pop(task_id, time.perf_counter())
    fields = {"event": "task", "task_id": task_id, "task": task.name, "state": state,
              "duration_ms": round(seconds * 1000, 1)}
    if isinstance(retval, dict):
        fields.update(retval)
    log.info("task %s %s", task.name, state, extra={"fields": fields})
