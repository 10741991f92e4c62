"""The HTTP API: one blueprint per resource; views stay thin."""
from flask import current_app


def services():
    """This process's Services (connections and helpers)."""
    return current_app.extensions["spillway"]
