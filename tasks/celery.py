"""The Celery application: configuration from celeryconfig, per-process connections."""
import logging

from celery import Celery
from celery.signals import worker_init, worker_process_init

from webapp.config import load_settings
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
def _check_connection_budget(**_):
    """Refuse to start if the stack's MySQL connection budget cannot fit."""
    from webapp.db import check_connection_budget

    check_connection_budget(services.settings)
