"""`make bench`: the load scenarios, measured against references in one run, with a zero-loss audit.

Runs the stack as `make run` does (bench/stack.py: deploy/run.py under
var/bench, supervisord, Flower, request logs on), loads 410,000 movie-like
items, then:
  references  hello-world ceiling (GET, POST), naive Flask + MySQL (GET, POST),
              the seeds' design (Flask + one Celery task per POST),
              raw PyMySQL executemany (the drain's limit)
  scenarios   hot reads and cold reads at 50/500/2,000 connections, a crawler
              burst, a log burst, mixed 90/10, a backlog drain, paced writes,
              and the 24-item POST in each WRITE_DURABILITY mode (fsync and
              replica on stacks of their own, replica with a local replica)
Every Spillway run records where the CPUs went. Writes bench/report.md,
bench/results.json and the PNG charts. Every wrk run is bounded in time and
only loads 127.0.0.1.
"""
import json
import os
import re
import resource
import sys
import threading
import time
from pathlib import Path

import pymysql
import requests

from bench import drain as drain_bench
from bench import loadgen
from bench.report import write_report
from bench.stack import API_KEY, VAR, BenchStack
from deploy.processes import wait_for
from deploy.seed import seed
from webapp.metrics import lag_counts, lag_quantile
from webapp.storage import keys
from webapp.storage.mysql import connect_kwargs
from webapp.storage.services import Services

HERE = Path(__file__).parent
KEYS = 410_000
SECONDS = int(os.environ.get("BENCH_SECONDS", 10))  # per wrk run (the crawler burst runs 2x)
STEPS = 40  # 37 when the paced lag holds at half the drain rate (no second paced run)


class Progress:
    """One line per step on stderr: where the bench is and what it just measured."""

    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.monotonic()

    def step(self, text):
        self.done += 1
        elapsed = time.monotonic() - self.started
        print(f"[{self.done:2d}/{self.total}] {elapsed:5.0f}s  {text}", file=sys.stderr, flush=True)


class Bench:
    """The stack, its connections and the results gathered so far."""

    def __init__(self):
        self.stack = BenchStack()
        self.settings = self.stack.start()
        self.svc = Services(self.settings, role="worker")
        self.progress = Progress(STEPS)
        self.results = {"runs": [], "audits": [], "targets": {}, "burst_timeline": []}
        self.web = None

    # --- helpers -------------------------------------------------------------------

    def sql(self, query, args=()):
        """One value from MySQL."""
        con = pymysql.connect(**connect_kwargs(self.settings.mysql_url, self.settings, 600))
        try:
            with con.cursor() as cur:
                cur.execute(query, args)
                row = cur.fetchone()
                return row[0] if row else None
        finally:
            con.close()

    def wrk(self, name, url, connections, script=None, seconds=SECONDS, role="spillway", **env):
        """Run wrk, keep the result and (for Spillway) where the CPUs went, report progress."""
        wrk_env = {**os.environ, "KEYS": str(KEYS), "API_KEY": API_KEY, **{k: str(v) for k, v in env.items()}}
        log_start = self.web.log_path.stat().st_size if role == "spillway" else 0
        with CpuMeter(self.stack if role == "spillway" else None) as cpu:
            result = loadgen.run(name, url, connections, seconds, script=script, env=wrk_env)
        errors = self._error_codes(log_start) if role == "spillway" else {}
        self.results["runs"].append({**result.__dict__, "role": role, "raw": None, "errors": errors,
                                     "cpu": cpu.cores if role == "spillway" else None})
        self.progress.step(f"{name} c{connections}: {result.rps:,.0f} req/s, p99 {result.p99:.1f} ms, "
                           f"non-2xx {result.non2xx}, timeouts {result.timeouts}, socket errors {result.socket_errors}")
        return result

    def _error_codes(self, offset):
        """{error code: count} the web server logged since `offset` (its request lines)."""
        time.sleep(0.6)  # request lines are written out twice a second
        codes = {}
        with open(self.web.log_path, "rb") as log:
            if log.seek(0, 2) < offset:  # supervisord rotated the log meanwhile
                offset = 0
            log.seek(offset)
            for line in log:
                if b'"error": ' in line and b'"event": "request"' in line:
                    code = json.loads(line).get("error")
                    codes[code] = codes.get(code, 0) + 1
        return codes

    def accepted_records(self):
        """Records the web server answered 202 for, by kind (from its /metrics)."""
        page = requests.get(self.web.url + "/metrics", timeout=30).text
        found = dict(re.findall(r'^spillway_records_accepted_total\{kind="(\w+)"\} (\S+)$', page, re.M))
        return {kind: int(float(found.get(kind, 0))) for kind in ("items", "events")}

    def drained(self, timeout=900):
        """Wait until the queue is empty; return the seconds it took."""
        started = time.monotonic()
        while True:
            depth = int(self.svc.redis.get(keys.DEPTH) or 0)
            if depth == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the queue did not drain in {timeout}s ({depth} records left)")
            time.sleep(0.5)

    def _sample(self, t0):
        stats = {k.decode(): int(v) for k, v in self.svc.redis.hgetall(keys.STATS).items()}
        persisted = sum(stats.get(f"{p}_{k}", 0) for p in ("persisted", "dead") for k in ("items", "events"))
        depth = int(self.svc.redis.get(keys.DEPTH) or 0)
        return {"t": time.monotonic() - t0, "persisted": persisted, "depth": depth, "entered": persisted + depth}

    def audit(self, scenario, kind, run, before, client_accepted):
        """Records accepted (202) = records in MySQL after the drain, none doubled."""
        accepted = self.accepted_records()[kind] - before[kind]
        if kind == "items":
            stored = self.sql("SELECT COUNT(*) FROM items WHERE k >= %s AND k < %s", (run + "-", run + "."))
            distinct = stored  # the primary key: a key is stored once
        else:
            stored = self.sql("SELECT COUNT(*) FROM events WHERE name = %s", (run,))
            distinct = self.sql("SELECT COUNT(DISTINCT data) FROM events WHERE name = %s", (run,))
        line = {"scenario": scenario, "kind": kind, "accepted": accepted, "client_saw_202": client_accepted,
                "in_mysql": stored, "lost": accepted - stored, "duplicated": stored - distinct}
        self.results["audits"].append(line)
        self.progress.step(f"audit {scenario}: {accepted:,} {kind} accepted, {stored:,} in MySQL, "
                           f"{line['lost']} lost, {line['duplicated']} duplicated")

    def start_spillway(self):
        """Spillway's web server, drain worker and Flower, as `make run` runs them."""
        self.stack.spillway(True)
        self.web = self.stack.web

    # --- the bench ------------------------------------------------------------------------

    def setup(self):
        """Empty state, 410,000 demo items, the naive reference's table."""
        self.stack.spillway(False)
        self.svc.redis.flushall()
        for statement in ("TRUNCATE TABLE items", "TRUNCATE TABLE events", "TRUNCATE TABLE dead_letters",
                          "DROP TABLE IF EXISTS naive_items", "CREATE TABLE naive_items LIKE items"):
            self.sql(statement)
        took = seed(self.settings, KEYS)
        self.progress.step(f"seeded {KEYS:,} movie-like items in {took:.1f}s")

    def references(self):
        """The ceiling, the naive design and the seeds' Celery design, under the same gunicorn settings."""
        hello = self.stack.reference("bench.hello:app")
        for c in (50, 500, 2000):
            self.wrk("ceiling GET", hello.url, c, "get_random.lua", role="ceiling")
        self.wrk("ceiling POST 24 items", hello.url, 50, "post_items.lua", role="ceiling", RUN="ceil")
        self.stack.stop_references()
        naive = self.stack.reference("bench.naive:app")
        self.wrk("naive GET", naive.url, 50, "get_random.lua", role="naive")
        self.wrk("naive POST 24 items", naive.url, 50, "post_items.lua", role="naive", RUN="naive")
        self.stack.stop_references()
        self.sql("TRUNCATE TABLE naive_items")
        seeds = self.stack.reference("bench.seeds:app")
        self.stack.celery("bench.seeds:celery", "seeds")
        started = time.monotonic()
        r = self.wrk("seeds POST 24 items", seeds.url, 50, "post_items.lua", role="seeds", RUN="seeds")
        # Done when no task is queued and none is held by a worker (reserved ones sit in kombu's
        # `unacked`), and the row count stands still (the last tasks may be running).
        stored = -1
        while time.monotonic() - started < 600:
            if self.svc.redis.llen("seeds") == 0 and self.svc.redis.hlen("unacked") == 0:
                count = self.sql("SELECT COUNT(*) FROM naive_items WHERE k >= 'seeds-' AND k < 'seeds.'")
                if count == stored:
                    break
                stored = count
            time.sleep(0.5)
        rate = stored / (time.monotonic() - started)
        self.results["targets"].update(seeds_end_to_end_rows_per_s=rate, seeds_rows=stored, seeds_seconds=r.seconds)
        self.progress.step(f"seeds' design: {stored:,} rows in MySQL, {rate:,.0f} rows/s end to end")
        self.stack.stop_references()

    def reads(self):
        """Hot reads (cache warm) and cold reads (cache flushed) at 50/500/2,000 connections."""
        self.start_spillway()
        count = self.svc.cache.warm_all()
        self.progress.step(f"warmed the cache with {count:,} items")
        for c in (50, 500, 2000):
            rss = RssSampler(self.web) if c == 2000 else None
            self.wrk("hot GET", self.web.url, c, "get_random.lua")
            if rss:
                self.results["targets"]["max_worker_rss_mb"] = rss.stop()
        for c in (50, 500, 2000):
            self.flush_item_cache()
            self.wrk("cold GET", self.web.url, c, "get_random.lua")

    def flush_item_cache(self):
        """Drop every cached item (not the queue, receipts or Celery's keys)."""
        for chunk in _chunks(self.svc.redis.scan_iter(keys.ITEM + "*", count=10_000), 10_000):
            self.svc.redis.unlink(*chunk)

    def writes(self):
        """Crawler burst, log burst and mixed load, each drained and audited."""
        before = self.accepted_records()
        timeline, stop = [], threading.Event()
        sampler = threading.Thread(target=self._burst_sampler, args=(timeline, stop))
        sampler.start()  # one clock from the burst's start until the queue is empty
        r = self.wrk("crawler burst POST 24 items", self.web.url, 50, "post_items.lua", seconds=2 * SECONDS,
                     RUN="crawl")
        took = self.drained()
        stop.set()
        sampler.join()
        self.results["burst_timeline"] = timeline
        self.results["targets"].update(burst_seconds=r.seconds, burst_drain_seconds=took)
        self.audit("crawler burst", "items", "crawl", before, (r.accepted_requests or 0) * 24)

        before = self.accepted_records()
        single = self.wrk("log burst POST 1 event", self.web.url, 50, "post_events.lua", RUN="log1", BATCH=1)
        self.drained()
        self.audit("log burst, single events", "events", "log1", before, single.accepted_requests or 0)
        before = self.accepted_records()
        hundred = self.wrk("log burst POST 100 events", self.web.url, 50, "post_events.lua", RUN="log100", BATCH=100)
        self.drained()
        self.audit("log burst, 100-event batches", "events", "log100", before, (hundred.accepted_requests or 0) * 100)

        count = self.svc.cache.warm_all()  # the cold reads left the cache nearly empty
        self.progress.step(f"warmed the cache again with {count:,} items")
        before = self.accepted_records()
        mixed = self.wrk("mixed 90% GET / 10% POST", self.web.url, 500, "mixed.lua", RUN="mixed")
        self.drained()
        self.audit("mixed 90/10", "items", "mixed", before, (mixed.accepted_requests or 0) * 24)

    def _burst_sampler(self, timeline, stop):
        t0 = time.monotonic()
        while not stop.is_set():
            timeline.append(self._sample(t0))
            time.sleep(0.5)

    def drain_limit(self):
        """Raw executemany vs the drain on a 500,000-record backlog."""
        self.stack.spillway(False)
        raw = drain_bench.raw_executemany(self.settings, 500_000)
        self.progress.step(f"raw executemany of 1,000-row upserts: {raw:,.0f} rows/s")
        self.svc.redis.flushall()
        drain_bench.queue_backlog(self.svc.queue, 500_000, prefix="backlog")
        rate, _ = drain_bench.drain_backlog(self.stack, self.svc, 500_000)
        stored = self.sql("SELECT COUNT(*) FROM items WHERE k >= 'backlog' AND k < 'backlog~'")
        self.results["targets"].update(raw_rows_per_s=raw, drain_rows_per_s=rate)
        self.results["audits"].append({"scenario": "500k backlog drain", "kind": "items", "accepted": 500_000,
                                       "client_saw_202": 500_000, "in_mysql": stored, "lost": 500_000 - stored,
                                       "duplicated": 0})
        self.progress.step(f"drain of a 500,000-record backlog: {rate:,.0f} rows/s = {rate / raw:.2f}x raw, "
                           f"{500_000 - stored} lost")

    def paced_lag(self):
        """Writes at half the measured drain rate: accept-to-persist lag p99.

        The drain rate is measured on a backlog with the CPUs to itself. If the
        lag misses at half of it, the same load runs again at three-eighths of
        it: does the lag hold at a load web and drain can carry together?
        """
        self.start_spillway()
        target = self.results["targets"]["drain_rows_per_s"] / 2  # records/s
        measured, p50, p99 = self._paced("paced POST at half the drain rate", "paced writes", target, "paced")
        self.results["targets"].update(paced_target_records_per_s=target, paced_records_per_s=measured,
                                       lag_p50_ms=p50, lag_p99_ms=p99)
        if p99 == "inf" or float(p99) > 1000:
            measured, p50, p99 = self._paced("paced POST at 3/8 of the drain rate", "paced writes at 3/8",
                                             0.75 * target, "lowpaced")
            self.results["targets"].update(lower_paced_records_per_s=measured, lower_lag_p50_ms=p50,
                                           lower_lag_p99_ms=p99)

    def _paced(self, name, audit_name, records_per_s, tag):
        """24-item POSTs on a clock at records_per_s, drained and audited: (records/s, lag p50, lag p99)."""
        lag_before = self._lag_counts()
        before = self.accepted_records()
        r = self.wrk(name, self.web.url, 50, "post_items.lua",
                     seconds=2 * SECONDS, RUN=tag, RATE=round(records_per_s / 24, 1), THREADS=2)
        self.drained()
        self.audit(audit_name, "items", tag, before, (r.accepted_requests or 0) * 24)
        lag = {k: v - lag_before.get(k, 0) for k, v in self._lag_counts().items()}
        measured = (r.accepted_requests or 0) * 24 / r.seconds
        p50, p99 = lag_quantile(lag, 0.50), lag_quantile(lag, 0.99)
        self.progress.step(f"lag at {measured:,.0f} records/s: p50 <= {p50} ms, p99 <= {p99} ms")
        return measured, p50, p99

    def _lag_counts(self):
        stats = {k.decode(): int(v) for k, v in self.svc.redis.hgetall(keys.STATS).items()}
        return lag_counts(stats)

    def durability(self):
        """The 24-item POST in each WRITE_DURABILITY mode, aof here, fsync and replica on stacks of their own."""
        self._durability_post("aof")
        self.stack.stop()
        for mode, ha in (("fsync", False), ("replica", True)):
            var = VAR.parent / f"bench-{mode}"
            self.stack = BenchStack(var=var, ha=ha, WRITE_DURABILITY=mode)
            self.settings = self.stack.start()
            self.svc.close()
            self.svc = Services(self.settings, role="worker")
            self.web = self.stack.web
            if ha:  # WAIT needs the replica attached: give the Sentinels a moment to see it
                _wait_replica(self.svc)
            self._durability_post(mode)
            self.stack.stop()

    def _durability_post(self, mode):
        """The 24-item POST on the stack running in WRITE_DURABILITY=mode, drained and audited."""
        before = self.accepted_records()
        self.wrk(f"durability {mode}: POST 24 items", self.web.url, 50, "post_items.lua", RUN=f"dur-{mode}")
        self.drained()
        self.audit(f"durability {mode}", "items", f"dur-{mode}", before, 0)

    def run(self):
        """Everything, then the report."""
        started = time.monotonic()
        try:
            self.setup()
            self.references()
            self.reads()
            self.writes()
            self.drain_limit()
            self.paced_lag()
            self.durability()
        finally:
            self.stack.stop()
        self.results["seconds"] = time.monotonic() - started
        (HERE / "results.json").write_text(json.dumps(self.results, indent=1))
        write_report(self.results, HERE)
        self.progress.step(f"wrote bench/report.md and charts in {self.results['seconds'] / 60:.1f} minutes")


class CpuMeter:
    """CPU used by each part of the stack (and left idle) while a block runs, in cores."""

    def __init__(self, stack):
        self.groups = {}
        if stack is not None:
            self.groups = {"web": stack.web.pid, "drain": stack.worker.pid, "Redis": stack.server_pid("redis"),
                           "MariaDB": stack.server_pid("mariadb"),
                           "flower": int(stack.ctl("pid", "flower").stdout.strip() or 0),
                           "supervisord": -int((stack.var / "run" / "supervisord.pid").read_text())}  # itself only

    @staticmethod
    def _ticks(pid):
        """CPU ticks of a process and its descendants (a negative pid: of the process alone)."""
        total = 0
        for p in ([-pid] if pid < 0 else [pid, *_descendants(pid)]):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().split(") ")[-1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total

    @staticmethod
    def _system():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    def __enter__(self):
        self.started = time.monotonic()
        self.before = {name: self._ticks(pid) for name, pid in self.groups.items()}
        self.wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.system_before = self._system()
        return self

    def __exit__(self, *exc):
        seconds = time.monotonic() - self.started
        ticks = os.sysconf("SC_CLK_TCK")
        self.cores = {name: round((self._ticks(pid) - self.before[name]) / ticks / seconds, 2)
                      for name, pid in self.groups.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cores["wrk"] = round((usage.ru_utime + usage.ru_stime - self.wrk_before.ru_utime
                                   - self.wrk_before.ru_stime) / seconds, 2)
        idle, total = self._system()
        cpus = os.cpu_count() or 1
        self.cores["idle"] = round((idle - self.system_before[0]) / max(1, total - self.system_before[1]) * cpus, 2)
        if self.groups:  # everything else on the machine (other processes, the kernel's own work)
            self.cores["other"] = round(max(0.0, cpus - sum(self.cores.values())), 2)


def _descendants(pid):
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for child in map(int, children):
        out += [child, *_descendants(child)]
    return out


class RssSampler:
    """The largest resident size of any gunicorn worker while it runs."""

    def __init__(self, web):
        self.web, self.max_kb, self._stop = web, 0, threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for pid in self.web.children():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                self.max_kb = max(self.max_kb, int(re.search(r"VmRSS:\s+(\d+)", status).group(1)))
            time.sleep(0.25)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return round(self.max_kb / 1024, 1)


def _wait_replica(svc, timeout=60):
    """Wait until the primary has a replica attached (WRITE_DURABILITY=replica waits for it)."""
    wait_for(lambda: int(svc.redis.info("replication").get("connected_slaves", 0)) >= 1, timeout=timeout,
             interval=0.5, message="a replica attached to the primary")


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main():
    """Run the bench."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(20000, hard), hard))  # 2,000 connections
    Bench().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
