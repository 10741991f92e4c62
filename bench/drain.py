"""Drain throughput: records/s persisted while draining a backlog, next to raw executemany.

raw:    PyMySQL executemany of 1,000-row INSERT ... ON DUPLICATE KEY UPDATE batches,
        one commit each, into a copy of the items table: the limit for this MySQL.
drain:  the same records queued as 24-record writes (as crawlers send them), then
        drained by real Celery workers: Stream reads, upserts, acks, receipts.
Run: python -m bench.drain [records]
"""
import sys
import time

import pymysql

from bench.data import movie_json
from webapp.clock import now_us, to_datetime
from webapp.storage.mysql import connect_kwargs
from webapp.storage.records import Item
from webapp.storage.sql.items import UPSERT


def raw_executemany(settings, records, batch=1000):
    """Rows/s of plain executemany upsert batches (a scratch table, dropped after)."""
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 600))
    stamp = to_datetime(now_us())
    try:
        with con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS items_raw")
            cur.execute("CREATE TABLE items_raw LIKE items")
            sql = UPSERT.replace("INTO items ", "INTO items_raw ")
            started = time.monotonic()
            for first in range(0, records, batch):
                con.begin()
                cur.executemany(sql, [(f"raw{n:07d}", movie_json(n), n + 1, 0, stamp)
                                      for n in range(first, min(records, first + batch))])
                con.commit()
            took = time.monotonic() - started
            cur.execute("DROP TABLE items_raw")
    finally:
        con.close()
    return records / took


def queue_backlog(queue, records, per_write=24, prefix="d"):
    """Queue `records` item records as writes of `per_write`; return the seconds it took."""
    started = time.monotonic()
    for first in range(0, records, per_write):
        batch = [Item(f"{prefix}{n:07d}", movie_json(n)) for n in range(first, min(records, first + per_write))]
        queue.append(batch, "bench")
    return time.monotonic() - started


def drain_backlog(stack, svc, records, sample=None):
    """Start workers on a queued backlog; return (records/s, [(seconds, depth, persisted)])."""
    from webapp.storage.keys import DEPTH

    stack.worker.start()
    samples, first_drop, started = [], None, time.monotonic()
    while True:
        depth = int(svc.redis.get(DEPTH) or 0)
        t = time.monotonic() - started
        samples.append((t, depth, records - depth))
        if sample:
            sample(t, depth)
        if first_drop is None and depth < records:
            first_drop = samples[-2][0] if len(samples) > 1 else t
        if depth == 0:
            break
        if t > 900:
            raise RuntimeError(f"the drain did not finish in 15 minutes ({depth} records left)")
        time.sleep(0.25)
    took = samples[-1][0] - first_drop
    return records / took, samples


def main(records=500_000):
    """Measure both in one run on the bench stack and print the ratio."""
    from bench.stack import BenchStack
    from webapp.storage.services import Services

    stack = BenchStack()
    settings = stack.start()
    svc = Services(settings, role="worker")
    try:
        stack.worker.stop()
        svc.redis.flushall()
        with pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 60)) as con, con.cursor() as cur:
            cur.execute("TRUNCATE TABLE items")
        raw = raw_executemany(settings, records)
        print(f"raw executemany: {raw:,.0f} rows/s")
        took = queue_backlog(svc.queue, records)
        print(f"queued {records:,} records in {took:.1f}s ({records / took:,.0f} records/s through the accept script)")
        drain, _ = drain_backlog(stack, svc, records)
        print(f"drain:           {drain:,.0f} rows/s = {drain / raw:.2f} x raw")
    finally:
        svc.close()
        stack.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500_000)
