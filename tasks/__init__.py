"""Spillway's Celery side: `celery -A tasks worker` finds the app here, with the drain keeper as a worker step."""
from tasks.celery import app
from tasks.keeper import DrainKeeper

app.steps["worker"].add(DrainKeeper)

__all__ = ["app"]
