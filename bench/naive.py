"""The naive reference: the design Spillway replaces, run under the same gunicorn settings.

Flask; a new MySQL connection per request; one autocommit INSERT per record;
no cache. TLS is off here as it is in Spillway (measured: 17 ms per connect
otherwise), so the comparison is about the design, not a setting.
Reads the same `items` table; writes go to `naive_items` (a copy of it).
"""
import json
import os

import pymysql
from flask import Flask, Response, request

from webapp.config import parse_mysql_url

app = Flask(__name__)
_target = parse_mysql_url(os.environ["MYSQL_URL"])
# One record into naive_items (the seeds' design sends many rows of it in one executemany).
INSERT = ("INSERT INTO naive_items (k, data, version, deleted, updated_at) "
          "VALUES (%s, %s, 1, 0, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE data = VALUES(data)")


def connect():
    """A new connection, as the naive design opens for every request."""
    return pymysql.connect(host=_target.host, port=_target.port, user=_target.user, password=_target.password,
                           database=_target.database, charset="utf8mb4", autocommit=True, ssl_disabled=True)


@app.get("/healthz")
def healthz():
    """So the bench knows the server is up."""
    return Response('{"status":"ok"}', content_type="application/json")


@app.get("/api/v1/items/<path:key>")
def get_item(key):
    """SELECT the row straight from MySQL."""
    con = connect()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT data, version, updated_at FROM items WHERE k = %s AND deleted = 0", (key,))
            row = cur.fetchone()
    finally:
        con.close()
    if row is None:
        return Response('{"error":"not found"}', 404, content_type="application/json")
    body = json.dumps({"key": key, "data": json.loads(row[0]), "version": row[1], "updated_at": row[2].isoformat()})
    return Response(body, content_type="application/json")


@app.post("/api/v1/items")
def post_items():
    """One autocommit INSERT per record."""
    items = request.get_json()["items"]
    con = connect()
    try:
        with con.cursor() as cur:
            for item in items:
                cur.execute(INSERT, (item["key"], json.dumps(item["data"])))
    finally:
        con.close()
    return Response(json.dumps({"accepted": len(items)}), 202, content_type="application/json")
