"""`make soak`: a day of traffic packed into SOAK_MINUTES (default 30), run as `make run` runs the stack.

Sustained mixed traffic at a rate the drain keeps up with (SOAK_RATE requests/s,
default 150): item batches and event batches with fresh Idempotency-Keys, reads
of items written before, deletes. The windows that make a day's churn (receipts,
Idempotency-Keys in Redis and in MySQL, event, tombstone and dead-letter
retention) are scaled down so that several of each pass in the run. Every 10 s
it samples Redis's memory and keys by kind, the queue, the accept-to-persist
lag, each process's RSS and open files, MySQL's connections and table sizes;
bench/soak_report.py writes bench/soak.md with charts and a verdict. At the end
the load stops, the queue drains, and an audit checks that every accepted write
is in MySQL exactly once (items by their final value, events by a marker).
"""
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pymysql
import requests

from bench.soak_report import write_report
from bench.stack import API_KEY, BenchStack
from webapp.config import ROOT, documented_settings
from webapp.metrics import lag_counts, lag_quantile
from webapp.storage import keys
from webapp.storage.mysql import connect_kwargs
from webapp.storage.services import Services

MINUTES = float(os.environ.get("SOAK_MINUTES", 30))
RATE = float(os.environ.get("SOAK_RATE", 150))  # requests per second, all kinds together
MIX = os.environ.get("SOAK_MIX", "mixed")  # or "writes": one-item writes with fresh Idempotency-Keys only
REPORT = os.environ.get("SOAK_REPORT", "soak")  # bench/<REPORT>.md and its charts
SAMPLE_S = 10.0
THREADS = 12
WINDOW_S = max(60, int(MINUTES * 60 / 6))  # the receipts' and retention's window: six of them in a run
# A day's windows, scaled: receipts and retention pass six times in the run; Idempotency-Keys leave Redis sooner.
# Any setting in the environment (PRIVATE_REDIS_MAXMEMORY=67108864, ...) goes to the stack as well.
OVERRIDES = {
    "RECEIPT_TTL": WINDOW_S, "SHORT_WINDOWS_OK": "true", "IDEMPOTENCY_CACHE_S": max(10, WINDOW_S // 5),
    "EVENTS_RETENTION_DAYS": WINDOW_S / 86400, "TOMBSTONE_RETENTION_DAYS": WINDOW_S / 86400,
    "DEAD_LETTER_RETENTION_DAYS": WINDOW_S / 86400,
    **{env: os.environ[env] for env, _, _ in documented_settings() if env in os.environ},
}
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
DOCUMENTED_503 = {"backpressure", "queue_unavailable", "database_unavailable", "pool_timeout", "cache_unavailable"}


class Traffic:
    """Threads sending mixed requests at RATE in all; what each 202 promised is kept for the audit."""

    def __init__(self, url):
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.items: dict[str, tuple[int, object]] = {}  # key -> (acceptance order, data, None: deleted)
        self.events: set[str] = set()  # markers of accepted events
        self.order = 0
        self.statuses: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def run(self, n):
        session = requests.Session()
        rng = random.Random(n)
        sent, started, period = 0, time.monotonic(), THREADS / RATE
        while not self.stop.is_set():
            try:
                self.one(session, rng, n, sent)
            except requests.RequestException as err:
                with self.lock:
                    self.statuses[f"error {type(err).__name__}"] += 1
            sent += 1
            time.sleep(max(0.0, started + sent * period - time.monotonic()))

    def one(self, session, rng, n, sent):
        if MIX == "writes":
            key = f"w{n}-{sent}"
            if self.post("/api/v1/items", {"items": [{"key": key, "data": {"n": sent}}]}, session):
                self.accepted_items({key: {"n": sent}})
            return
        roll = rng.random()
        if roll < 0.4:  # an item batch
            batch = {f"k{n}-{rng.randrange(5000)}": {"n": sent, "pad": "x" * rng.randrange(200)}
                     for _ in range(rng.randint(1, 10))}
            body = {"items": [{"key": k, "data": d} for k, d in batch.items()]}
            if self.post("/api/v1/items", body, session):
                self.accepted_items(batch)
        elif roll < 0.6:  # an event batch, each with a marker
            markers = [uuid.uuid4().hex for _ in range(rng.randint(1, 5))]
            body = {"events": [{"name": "soak", "level": "info", "data": {"m": m}} for m in markers]}
            if self.post("/api/v1/events", body, session):
                with self.lock:
                    self.events.update(markers)
        elif roll < 0.95:  # a read of an item written before
            key = f"k{n}-{rng.randrange(5000)}"
            r = session.get(f"{self.url}/api/v1/items/{key}", timeout=30)
            self.count(r)
        else:  # a delete
            key = f"k{n}-{rng.randrange(5000)}"
            r = session.delete(f"{self.url}/api/v1/items/{key}", timeout=30,
                               headers={**HEADERS, "Idempotency-Key": uuid.uuid4().hex})
            if self.count(r) == 202:
                self.accepted_items({key: None})

    def post(self, path, body, session):
        r = session.post(self.url + path, data=json.dumps(body), timeout=30,
                         headers={**HEADERS, "Idempotency-Key": uuid.uuid4().hex})
        return self.count(r) == 202

    def count(self, r):
        code = r.json().get("error", {}).get("code", "") if r.status_code >= 400 else ""
        with self.lock:
            self.statuses[f"{r.status_code} {code}".strip()] += 1
        return r.status_code

    def accepted_items(self, batch):
        with self.lock:
            for key, data in batch.items():
                self.order += 1
                self.items[key] = (self.order, data)


def processes(stack):
    """{name: [pids]} of the stack: supervisord's programs and their children, and the private servers."""
    found = {}
    for name in ("web", "worker", "flower"):
        pid = int(stack.ctl("pid", name).stdout.strip() or 0)
        if pid:
            found[name] = [pid, *_children(pid)]
    for name in ("redis", "redis-broker", "mariadb"):
        path = stack.var / "run" / f"{name}.pid"
        if path.exists():
            found[name] = [int(path.read_text())]
    return found


def _children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_and_files(pids):
    rss, files = 0, 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
            files += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            pass
    return rss, files


def sample(stack, svc, con, t0, last_lag):
    """One row of the soak's series."""
    redis = svc.redis
    kinds: Counter[str] = Counter()
    cached = []  # a few cached items, weighed to estimate the evictable cache's share of used_memory
    for key in redis.scan_iter(count=5000):
        name = key.decode(errors="replace")
        kind = name[len(keys.PREFIX):].split(":", 1)[0] if name.startswith(keys.PREFIX) else "other"
        kinds[{"write": "receipts", "idem": "idempotency keys", "item": "cached items"}.get(kind, "other")] += 1
        if kind == "item" and len(cached) < 50:
            cached.append(key)
    weights = [redis.memory_usage(k) or 0 for k in cached]
    cache_bytes = kinds["cached items"] * sum(weights) // len(weights) if weights else 0
    memory = redis.info("memory")
    counters = {k.decode(): int(v) for k, v in redis.hgetall(keys.STATS).items()}
    lags = lag_counts(counters)
    recent = {b: n - last_lag.get(b, 0) for b, n in lags.items()}
    with con.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        connections = int(cur.fetchone()[1])
        cur.execute("SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('items', 'events', 'writes', 'dead_letters')")
        tables = {name: {"rows": int(rows or 0), "bytes": int(size or 0)} for name, rows, size in cur.fetchall()}
    per_process = {name: dict(zip(("rss", "files"), _rss_and_files(pids), strict=True))
                   for name, pids in processes(stack).items()}
    row = {"t": round(time.monotonic() - t0, 1), "redis_used": int(memory["used_memory"]), "redis_cache": cache_bytes,
           "redis_max": int(memory.get("maxmemory", 0)),
           "redis_keys": dict(kinds), "queue_depth": int(redis.get(keys.DEPTH) or 0),
           "lag_p99_ms": lag_quantile(recent, 0.99), "lag_p50_ms": lag_quantile(recent, 0.5),
           "processes": per_process, "mysql_connections": connections, "tables": tables}
    return row, lags


def audit(traffic, settings):
    """Every accepted write in MySQL exactly once: items by their final value, events by marker or purge count."""
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 600))
    try:
        with con.cursor() as cur:
            cur.execute("SELECT k, data FROM items WHERE deleted = 0")
            live = {k: json.loads(d) for k, d in cur.fetchall()}
            cur.execute("SELECT JSON_VALUE(data, '$.m'), COUNT(*) FROM events GROUP BY 1 HAVING COUNT(*) > 1")
            doubled = cur.fetchall()
            cur.execute("SELECT COUNT(*) FROM events")
            events_now = cur.fetchone()[0]
    finally:
        con.close()
    wrong = [k for k, (_, data) in traffic.items.items() if live.get(k) != data]
    extra = [k for k in live if k not in traffic.items]
    return {"items_checked": len(traffic.items), "items_wrong": len(wrong), "items_unexpected": len(extra),
            "events_accepted": len(traffic.events), "events_in_mysql": events_now, "events_doubled": len(doubled),
            "examples": wrong[:5]}


def main():
    """Run the soak; write bench/soak.md and its charts; exit 1 if the verdict fails."""
    stack = BenchStack(var=ROOT / "var" / "soak", mysql_port=33307, redis_port=36380, **OVERRIDES)
    settings = stack.start()
    svc = Services(settings, role="worker")
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 60))
    traffic = Traffic(stack.web.url)
    rows, t0 = [], time.monotonic()
    try:
        _, last_lag = sample(stack, svc, con, t0, {})
        traffic.start()
        while time.monotonic() - t0 < MINUTES * 60:
            time.sleep(SAMPLE_S - (time.monotonic() - t0) % SAMPLE_S)
            row, last_lag = sample(stack, svc, con, t0, last_lag)
            rows.append(row)
            print(f"soak {row['t']:6.0f}s  redis {row['redis_used'] / 2**20:6.1f} MiB  queue {row['queue_depth']:6d}"
                  f"  lag p99 {row['lag_p99_ms']} ms  {dict(traffic.statuses)}", file=sys.stderr, flush=True)
        traffic.finish()
        deadline = time.monotonic() + 600
        while int(svc.redis.get(keys.DEPTH) or 0) and time.monotonic() < deadline:
            time.sleep(1)
        checked = audit(traffic, settings)
        counters = {k.decode(): int(v) for k, v in svc.redis.hgetall(keys.STATS).items()}
        checked["events_purged"] = counters.get("retention_purged_events", 0)
    finally:
        traffic.stop.set()
        con.close()
        svc.close()
        stack.stop()
    verdict = write_report(rows, dict(traffic.statuses), checked, MINUTES, RATE, MIX, OVERRIDES, DOCUMENTED_503,
                           REPORT)
    print(f"soak: {'PASS' if verdict else 'FAIL'}; bench/{REPORT}.md written", file=sys.stderr)
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
