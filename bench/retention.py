"""`python -m bench.retention`: does purging millions of rows slow the drain? Writes bench/retention.md.

The stack as `make run` runs it, with EVENTS_, TOMBSTONE_ and
DEAD_LETTER_RETENTION_DAYS set. Paced 24-item writes (at RATE records/s) run
twice for the same time: once with nothing to purge, once just after 3 million
rows past their days were loaded (2 million events, 1 million tombstones), while
the retention task purges them. The accept-to-persist lag p99 of both runs is
compared; the target is the second within 2x of the first. Each purge statement's
EXPLAIN (the index it walks) is in the report too.
"""
import datetime
import os
import sys
import time
from pathlib import Path

import pymysql

from bench import loadgen
from bench.stack import API_KEY, BenchStack
from webapp.config import ROOT
from webapp.metrics import lag_counts, lag_quantile
from webapp.storage import keys
from webapp.storage.mysql import connect_kwargs
from webapp.storage.services import Services
from webapp.storage.sql import deadletters, events, items, writes

HERE = Path(__file__).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", 60))
RATE = float(os.environ.get("RATE", 4000))  # records/s: a load the drain keeps up with on a shared host
EVENTS, TOMBSTONES = 2_000_000, 1_000_000


def paced(stack, svc, tag):
    """Paced 24-item POSTs for SECONDS: (records/s accepted, lag p50, lag p99, retention purged meanwhile)."""
    def stats():
        return {k.decode(): int(v) for k, v in svc.redis.hgetall(keys.STATS).items()}

    before = stats()
    env = {**os.environ, "API_KEY": API_KEY, "RUN": tag, "RATE": str(round(RATE / 24, 1)), "THREADS": "2"}
    r = loadgen.run(tag, stack.web.url, 50, SECONDS, script="post_items.lua", env=env)
    while int(svc.redis.get(keys.DEPTH) or 0):
        time.sleep(0.5)
    after = stats()
    lags = {b: n - lag_counts(before).get(b, 0) for b, n in lag_counts(after).items()}
    purged = sum(after.get(f"retention_purged_{w}", 0) - before.get(f"retention_purged_{w}", 0)
                 for w in ("events", "tombstones", "dead_letters", "receipts"))
    if not r.seconds:
        raise SystemExit(f"retention bench: the {tag} load did not run (see its log); is the stack up?")
    return (r.accepted_requests or 0) * 24 / r.seconds, lag_quantile(lags, 0.5), lag_quantile(lags, 0.99), purged


def load_old_rows(con):
    """3 million rows past their days, loaded inside MariaDB with its sequence tables (seconds)."""
    old = datetime.datetime.utcnow() - datetime.timedelta(days=30)
    base = int(old.replace(tzinfo=datetime.UTC).timestamp() * 1_000_000)
    with con.cursor() as cur:
        cur.execute(f"INSERT INTO events (seq, name, level, occurred_at, received_at, data) "
                    f"SELECT {base} + seq, 'old', 'info', %s, %s, '{{}}' FROM seq_1_to_{EVENTS}", (old, old))
        cur.execute(f"INSERT INTO items (k, data, version, deleted, updated_at) "
                    f"SELECT CONCAT('gone-', seq), NULL, {base} + seq, 1, %s FROM seq_1_to_{TOMBSTONES}", (old,))
    con.commit()


def explain(con):
    """{purge: (index, access type)} of each purge statement."""
    bound = int(time.time() * 1_000_000)
    found = {}
    with con.cursor() as cur:
        cur.execute("ANALYZE TABLE events, items, dead_letters, writes")
        cur.fetchall()
        for name, statement, arg in (("events", events.PURGE, bound), ("tombstones", items.PURGE, bound),
                                     ("dead letters", deadletters.PURGE, datetime.datetime.utcnow()),
                                     ("receipts", writes.PURGE, "w_1")):
            cur.execute("EXPLAIN " + statement, (arg, 1000))
            plan = dict(zip([c[0] for c in cur.description], cur.fetchone()))
            found[name] = (plan["key"], plan["type"], plan["rows"])
    return found


def main():
    stack = BenchStack(var=ROOT / "var" / "bench-retention", mysql_port=33317, redis_port=36390,
                       EVENTS_RETENTION_DAYS=1, TOMBSTONE_RETENTION_DAYS=1, DEAD_LETTER_RETENTION_DAYS=1)
    settings = stack.start()
    svc = Services(settings, role="worker")
    con = pymysql.connect(**{**connect_kwargs(settings.mysql_url, settings, 3600), "autocommit": False})
    try:
        calm = paced(stack, svc, "calm")
        print(f"without purging: {calm}", file=sys.stderr, flush=True)
        started = time.monotonic()
        load_old_rows(con)
        loaded_s = time.monotonic() - started
        plans = explain(con)
        busy = paced(stack, svc, "purging")
        print(f"while purging: {busy}", file=sys.stderr, flush=True)
        with con.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM events WHERE name = 'old'")
            left = cur.fetchone()[0]
    finally:
        con.close()
        svc.close()
        stack.stop()
    ratio = (busy[2] or 0) / (calm[2] or 1) if calm[2] not in (None, "inf") and busy[2] != "inf" else None
    lines = [
        "# Retention while the drain writes",
        "",
        f"`python -m bench.retention`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: paced 24-item POSTs at "
        f"{RATE:,.0f} records/s for {SECONDS} s with nothing to purge, then {SECONDS} s right after "
        f"{EVENTS + TOMBSTONES:,} rows past their retention were loaded ({EVENTS:,} events, {TOMBSTONES:,} tombstones; "
        f"loaded in {loaded_s:.0f} s), while the retention task purged them. Lag is accept to persist, per record, "
        "as bucket bounds (ms).",
        "",
        "| run | records/s | lag p50 | lag p99 | rows purged meanwhile |",
        "|---|---:|---:|---:|---:|",
        f"| nothing to purge | {calm[0]:,.0f} | {calm[1]} | {calm[2]} | {calm[3]:,} |",
        f"| purging | {busy[0]:,.0f} | {busy[1]} | {busy[2]} | {busy[3]:,} |",
        "",
        f"Lag p99 while purging: {ratio:.2f}x the lag without it (target: within 2x)." if ratio is not None
        else "Lag p99: see the table.",
        f"Old events left at the end: {left:,} (the task purges for 20 s a minute; the rest goes in later runs).",
        "",
        "Each purge statement's plan (EXPLAIN): " + "; ".join(
            f"{name}: index `{key}`, {kind}" for name, (key, kind, _) in plans.items()) + ".",
        "",
    ]
    (HERE / "retention.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
