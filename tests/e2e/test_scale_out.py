"""Scale-out: several web servers and Celery workers on one MariaDB/Redis pair; a read replica."""
import dataclasses
import json
import threading

import pymysql
import pytest
import requests

from deploy.bootstrap import DATABASE, DB_USER, _secret_file
from deploy.processes import wait_for
from deploy.servers import MariaDB
from tests.e2e.helpers import HEADERS, MYSQL_PORT, VAR, get, item_url, put_row
from webapp.storage.mysql import connect_kwargs
from webapp.storage.startup import apply_schema


def test_two_web_servers_and_two_workers_lose_and_double_nothing(fresh, start_web, start_worker, db, rds):
    webs = [start_web(), start_web()]
    workers = [start_worker(name=name, DRAIN_TASK_SECONDS=2, DRAIN_CONCURRENCY=4) for name in ("a", "b")]
    accepted, lock = [], threading.Lock()

    def client(n):
        for i in range(40):
            web = webs[(n + i) % 2]
            items = [{"key": f"s{n}-{i}-{j}", "data": {"n": n, "i": i}} for j in range(5)]
            events = [{"name": "scale", "data": {"n": n, "i": i}}]
            r1 = requests.post(web.url + "/api/v1/items", headers=HEADERS, data=json.dumps({"items": items}), timeout=30)
            r2 = requests.post(web.url + "/api/v1/events", headers=HEADERS, data=json.dumps({"events": events}),
                               timeout=30)
            with lock:
                accepted.extend([r1.status_code, r2.status_code])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted == [202] * (12 * 40 * 2)
    wait_for(lambda: int(rds.get("spillway:queue:depth") or 0) == 0, timeout=90, message="the queue to drain")
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items")
        assert cur.fetchone()[0] == 12 * 40 * 5
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT data) FROM events")
        assert cur.fetchone() == (12 * 40, 12 * 40)
    # Both workers drained: each has a pool process among the Stream group's consumers.
    consumer_pids = {int(c["name"].decode().split(":")[1]) for c in rds.xinfo_consumers("spillway:queue", "drain")}
    assert all(consumer_pids & set(w.children()) for w in workers)


@pytest.fixture()
def replica(settings):
    """A second MariaDB standing in for a replica (replication itself is MariaDB's job, not tested here)."""
    server = MariaDB(VAR / "replica", MYSQL_PORT + 1, max_connections=100)
    server.start()
    password = _secret_file(VAR / "replica", "mariadb.password")
    server.ensure_database(DATABASE, DB_USER, password)
    url = server.url(DATABASE, DB_USER, password)
    apply_schema(dataclasses.replace(settings, mysql_url=url))
    con = pymysql.connect(**connect_kwargs(url, settings, 30))
    with con.cursor() as cur:
        cur.execute("TRUNCATE TABLE items")
    yield server, url, con
    con.close()
    server.stop()


def test_misses_and_lists_read_the_replica_and_fall_back_to_the_primary(fresh, start_web, db, replica):
    server, url, replica_db = replica
    put_row(replica_db, "only-on-replica", {"from": "replica"})
    put_row(db, "only-on-primary", {"from": "primary"})
    web = start_web(MYSQL_REPLICA_URL=url)
    assert get(item_url(web.url, "only-on-replica")).json()["data"] == {"from": "replica"}
    assert [i["key"] for i in get(web.url + "/api/v1/items").json()["items"]] == ["only-on-replica"]
    server.stop()  # the replica is gone: reads go to the primary
    assert get(item_url(web.url, "only-on-primary")).json()["data"] == {"from": "primary"}
    assert [i["key"] for i in get(web.url + "/api/v1/items").json()["items"]] == ["only-on-primary"]
