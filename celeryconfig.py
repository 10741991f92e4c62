"""Celery settings: webapp/celeryconfig.py, the module the drain and the API load (kept here for the layout)."""
from webapp.celeryconfig import *  # noqa: F403
