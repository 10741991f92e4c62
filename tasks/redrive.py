"""The redrive task: dead letters go back through the queue (visible in Flower as spillway.redrive)."""
from typing import Any

from tasks.celery import app, services
from webapp.storage.sql.deadletters import Filter


@app.task(name="spillway.redrive")
def redrive(selection: dict[str, Any]) -> dict[str, Any]:
    """Send the dead letters `selection` (a Filter's fields) back through the queue; return how many."""
    return {"redriven": services.dead_letters.redrive(Filter.from_dict(selection)), "selection": selection}
