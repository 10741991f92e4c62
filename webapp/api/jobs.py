"""Celery tasks the API starts (a dead-letter redrive), published by name: the web never imports tasks/.

The Celery app is made on first use in each worker process, from the same
celeryconfig (and so the same broker, Sentinel included) as the workers.
"""
from functools import lru_cache
from typing import Any

from celery import Celery


@lru_cache(maxsize=1)
def _producer(pid: int) -> Celery:
    app = Celery("spillway")
    app.config_from_object("webapp.celeryconfig")
    return app


def start(name: str, *args: Any) -> str:
    """Publish task `name` with `args`; return its id (Flower shows it)."""
    import os

    return str(_producer(os.getpid()).send_task(name, args=args).id)
