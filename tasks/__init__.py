"""Spillway's Celery side: `celery -A tasks worker` finds the app here."""
from tasks.celery import app

__all__ = ["app"]
