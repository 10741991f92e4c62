"""The seeds' design, a reference: Flask publishes one Celery task per POST, a worker inserts its records.

What a simple Celery design does under the same gunicorn settings: a POST is
answered once its task is published (`insert_items.delay(items)`), and a
Celery worker writes the task's records with one multi-row upsert into
`naive_items`. It shares the bench's private Redis (as broker) and MariaDB.
Run: gunicorn -c gunicorn.conf.py bench.seeds:app, and celery -A bench.seeds worker.
"""
import json
import os

from celery import Celery
from flask import Flask, Response, request

from bench.naive import INSERT, connect

app = Flask(__name__)
celery = Celery("seeds", broker=os.environ["REDIS_URL"])
celery.conf.update(task_default_queue="seeds", task_serializer="json", accept_content=["json"],
                   task_ignore_result=True, worker_prefetch_multiplier=4)
_con = None


@app.get("/healthz")
def healthz():
    """So the bench knows the server is up."""
    return Response('{"status":"ok"}', content_type="application/json")


@app.post("/api/v1/items")
def post_items():
    """Publish one task carrying the batch; 202."""
    items = request.get_json()["items"]
    insert_items.delay(items)
    return Response(json.dumps({"accepted": len(items)}), 202, content_type="application/json")


@celery.task(name="seeds.insert_items")
def insert_items(items):
    """One multi-row upsert of a POST's records (a connection kept per worker process)."""
    global _con
    if _con is None:
        _con = connect()  # the naive reference's connection, kept
    with _con.cursor() as cur:
        cur.executemany(INSERT, [(item["key"], json.dumps(item["data"])) for item in items])
