"""The seeds' design, a reference: Flask publishes one Celery task per POST, a worker inserts its records.

What a simple Celery design does under the same gunicorn settings: a POST is
answered once its task is published (`insert_items.delay(items)`), and a
Celery worker writes the task's records with one multi-row upsert into
`naive_items`. It shares the bench's private Redis (as broker) and MariaDB.
Run: gunicorn -c gunicorn.conf.py bench.seeds:app, and celery -A bench.seeds worker.
"""
import json
import os

import pymysql
from celery import Celery
from flask import Flask, Response, request

from webapp.config import parse_mysql_url

app = Flask(__name__)
celery = Celery("seeds", broker=os.environ["REDIS_URL"])
celery.conf.update(task_default_queue="seeds", task_serializer="json", accept_content=["json"],
                   task_ignore_result=True, worker_prefetch_multiplier=4)
_target = parse_mysql_url(os.environ["MYSQL_URL"])
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
        _con = pymysql.connect(host=_target.host, port=_target.port, user=_target.user, password=_target.password,
                               database=_target.database, charset="utf8mb4", autocommit=True, ssl_disabled=True)
    with _con.cursor() as cur:
        cur.executemany("INSERT INTO naive_items (k, data, version, deleted, updated_at) "
                        "VALUES (%s, %s, 1, 0, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE data = VALUES(data)",
                        [(item["key"], json.dumps(item["data"])) for item in items])
