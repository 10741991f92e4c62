"""bench/report.md and its charts, from one run's results (bench/results.json)."""
import itertools
import os
import platform
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _find(runs, name, connections=None, role=None):
    for r in runs:
        if r["name"] == name and (connections is None or r["connections"] == connections) \
                and (role is None or r["role"] == role):
            return r
    return None


def _references(runs, run):
    """(ceiling, naive) runs a scenario is compared with."""
    if run["role"] != "spillway":
        return None, None
    if "GET" in run["name"] and "mixed" not in run["name"]:
        return _find(runs, "ceiling GET", run["connections"]), (
            _find(runs, "naive GET", 50) if run["connections"] == 50 else None)
    if "mixed" in run["name"]:
        return _find(runs, "ceiling GET", run["connections"]), None
    naive = _find(runs, "naive POST 24 items") if "24 items" in run["name"] and run["connections"] == 50 else None
    return _find(runs, "ceiling POST 24 items"), naive


def _ratio(value, reference):
    return f"{value / reference:.2f}x" if reference else ""


HOT_GET_GOAL = 0.55  # x the ceiling's GET at 500 connections
DURABILITY_GOALS = {"fsync": 0.7, "replica": 0.8}  # x the aof mode's POST


def targets(results):
    """[(target, measured, met)] for the targets."""
    runs, t = results["runs"], results["targets"]
    hot500, ceil500 = _find(runs, "hot GET", 500), _find(runs, "ceiling GET", 500)
    hot2k = _find(runs, "hot GET", 2000)
    burst, ceil_post = _find(runs, "crawler burst POST 24 items"), _find(runs, "ceiling POST 24 items")
    naive_post, seeds_post = _find(runs, "naive POST 24 items"), _find(runs, "seeds POST 24 items")
    out = [
        (f"Hot reads at 500 connections >= {HOT_GET_GOAL}x the ceiling",
         f"{hot500['rps'] / ceil500['rps']:.2f}x ({hot500['rps']:,.0f} vs {ceil500['rps']:,.0f} req/s)",
         hot500["rps"] >= HOT_GET_GOAL * ceil500["rps"]),
        ("2,000 connections: zero non-2xx, timeouts below 0.1%",
         f"{hot2k['non2xx']} non-2xx, {hot2k['timeouts']} timeouts ({100 * hot2k['timeouts'] / max(1, hot2k['requests']):.3f}%), "
         f"{hot2k['socket_errors']} other socket errors",
         hot2k["non2xx"] == 0 and hot2k["timeouts"] < 0.001 * hot2k["requests"] and hot2k["socket_errors"] == 0),
        ("24-item POST burst at 50 connections >= 0.20x the ceiling's POST, >= 10x naive, >= 3x the seeds' design",
         f"{burst['rps'] / ceil_post['rps']:.2f}x ceiling, {burst['rps'] / naive_post['rps']:.1f}x naive, "
         f"{burst['rps'] / seeds_post['rps']:.1f}x seeds ({burst['rps']:,.0f} vs {ceil_post['rps']:,.0f}, "
         f"{naive_post['rps']:,.0f} and {seeds_post['rps']:,.0f} req/s)",
         burst["rps"] >= 0.20 * ceil_post["rps"] and burst["rps"] >= 10 * naive_post["rps"]
         and burst["rps"] >= 3 * seeds_post["rps"]),
        ("Drain >= 0.9x the raw drain limit",
         f"{t['drain_rows_per_s'] / t['raw_rows_per_s']:.2f}x ({t['drain_rows_per_s']:,.0f} vs {t['raw_rows_per_s']:,.0f} rows/s)",
         t["drain_rows_per_s"] >= 0.9 * t["raw_rows_per_s"]),
        ("Accept-to-persist lag p99 <= 1 s at half the drain rate",
         f"p99 <= {t['lag_p99_ms']} ms, p50 <= {t['lag_p50_ms']} ms at {t['paced_records_per_s']:,.0f} records/s "
         f"(target rate {t['paced_target_records_per_s']:,.0f})",
         t["lag_p99_ms"] != "inf" and float(t["lag_p99_ms"]) <= 1000),
        ("Each web worker's RSS <= 200 MB at 2,000 connections", f"{t['max_worker_rss_mb']} MB at most",
         t["max_worker_rss_mb"] <= 200),
    ]
    aof = _find(runs, "durability aof: POST 24 items")
    for mode, goal in DURABILITY_GOALS.items():
        run = _find(runs, f"durability {mode}: POST 24 items")
        if aof and run:
            out.append((f"24-item POST with WRITE_DURABILITY={mode} >= {goal}x aof (group commit)",
                        f"{run['rps'] / aof['rps']:.2f}x ({run['rps']:,.0f} vs {aof['rps']:,.0f} req/s)",
                        run["rps"] >= goal * aof["rps"]))
    return out


def bound(cpu):
    """What a run was bound by, from where the CPUs went: the busiest parts, and whether any CPU was left."""
    if not cpu:
        return ""
    parts = sorted(((v, k) for k, v in cpu.items() if k != "idle"), reverse=True)
    busiest = ", ".join(f"{k} {v:.2f}" for v, k in parts[:3])
    idle = cpu.get("idle", 0)
    limit = "CPU" if idle < 0.2 * (os.cpu_count() or 1) else f"not CPU ({idle:.2f} idle)"
    return f"{limit}: {busiest}"


def _table(results):
    runs = results["runs"]
    lines = ["| scenario | conns | req/s | x ceiling | x naive | p50 ms | p99 ms | non-2xx | timeouts | other socket errors "
             "| bound by (cores) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    explained = []
    for r in runs:
        ceiling, naive = _references(runs, r)
        timeouts = f"{r['timeouts']} ({100 * r['timeouts'] / max(1, r['requests']):.2f}%)"
        lines.append(
            f"| {r['role'] + ': ' if r['role'] != 'spillway' else ''}{r['name']} | {r['connections']} | {r['rps']:,.0f} "
            f"| {_ratio(r['rps'], ceiling['rps']) if ceiling else ''} | {_ratio(r['rps'], naive['rps']) if naive else ''} "
            f"| {r['latency_ms'].get('50', r['latency_ms'].get(50, 0)):.2f} | {r['latency_ms'].get('99', r['latency_ms'].get(99, 0)):.1f} "
            f"| {r['non2xx']} | {timeouts} | {r['socket_errors']} | {bound(r.get('cpu'))} |")
        answered = {k: v for k, v in (r.get("errors") or {}).items() if k != "not_found"}
        if r["non2xx"] and answered:
            what = ", ".join(f"{n} `{code}`" for code, n in sorted(answered.items(), key=lambda kv: -kv[1]))
            explained.append(f"- {r['name']} c{r['connections']}: the server answered {what}.")
    if explained:
        lines += ["", "Non-2xx answers, by the error code the server logged:", *explained]
    return "\n".join(lines)


def burst_chart(results, path):
    """Accepted and persisted records/s and queue depth over the crawler burst."""
    timeline = results["burst_timeline"]
    times = [p["t"] for p in timeline]
    accepted, persisted = [0.0], [0.0]
    for a, b in itertools.pairwise(timeline):
        dt = max(1e-6, b["t"] - a["t"])
        accepted.append((b["entered"] - a["entered"]) / dt)
        persisted.append((b["persisted"] - a["persisted"]) / dt)
    fig, left = plt.subplots(figsize=(9, 4.5))
    left.plot(times, accepted, label="accepted records/s", color="tab:blue")
    left.plot(times, persisted, label="persisted records/s", color="tab:green")
    left.set_xlabel("seconds since the burst began")
    left.set_ylabel("records per second")
    right = left.twinx()
    right.fill_between(times, [p["depth"] for p in timeline], color="tab:orange", alpha=0.25, label="queue depth")
    left.axvline(results["targets"]["burst_seconds"], color="gray", linestyle=":", linewidth=1)
    left.annotate("burst ends", (results["targets"]["burst_seconds"], left.get_ylim()[1] * 0.95), fontsize=8,
                  color="gray", xytext=(4, 0), textcoords="offset points")
    right.set_ylabel("queued records")
    lines = left.get_legend_handles_labels()
    fills = right.get_legend_handles_labels()
    left.legend(lines[0] + fills[0], lines[1] + fills[1], loc="upper left")
    left.set_title("Crawler burst: writes accepted at once, persisted at the drain's pace")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_chart(results, path):
    """p50 and p99 per scenario, Spillway beside its references."""
    runs = results["runs"]
    labels = [f"{r['role'][0].upper() + ': ' if r['role'] != 'spillway' else ''}{r['name']} c{r['connections']}"
              for r in runs]
    p50 = [r["latency_ms"].get("50", r["latency_ms"].get(50, 0)) for r in runs]
    p99 = [r["latency_ms"].get("99", r["latency_ms"].get(99, 0)) for r in runs]
    colors = {"spillway": "tab:blue", "ceiling": "tab:gray", "naive": "tab:red", "seeds": "tab:purple"}
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(runs) + 1.5))
    y = range(len(runs))
    ax.barh([i + 0.2 for i in y], p99, height=0.4, color=[colors[r["role"]] for r in runs], alpha=0.45, label="p99")
    ax.barh([i - 0.2 for i in y], p50, height=0.4, color=[colors[r["role"]] for r in runs], label="p50")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale); dark: p50, light: p99; gray: ceiling, red: naive")
    ax.set_title("Latency per scenario")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lag_bound(results):
    """When the lag missed at half the drain rate: where the CPUs went, and the lag at 3/8 of it."""
    t = results["targets"]
    paced = _find(results["runs"], "paced POST at half the drain rate")
    if "lower_lag_p99_ms" not in t or not paced:
        return ""
    return (f"What bounds the lag at half the drain rate: the drain rate ({t['drain_rows_per_s']:,.0f} rows/s) is "
            f"measured on a backlog with the CPUs to the drain; at half of it the web accepts at the same time and "
            f"the CPUs were taken ({bound(paced.get('cpu'))} cores). At 3/8 of the drain rate "
            f"({t['lower_paced_records_per_s']:,.0f} records/s) the lag was p99 <= {t['lower_lag_p99_ms']} ms, "
            f"p50 <= {t['lower_lag_p50_ms']} ms.")


def _other_bounds(results):
    """What bounds the cached GET and the replica mode, when they miss their targets."""
    runs, out = results["runs"], []
    hot500, ceil500 = _find(runs, "hot GET", 500), _find(runs, "ceiling GET", 500)
    if hot500 and ceil500 and hot500["rps"] < HOT_GET_GOAL * ceil500["rps"]:
        out.append(f"What bounds cached reads at 500 connections: the web's CPU ({bound(hot500.get('cpu'))} cores), "
                   "where the ceiling answers a constant. Inside a worker (`python -m bench.profile hot 500`, measured "
                   "once: see docs/benchmarks.md): gunicorn's request parsing about a quarter, Spillway's layers "
                   "about a quarter (half of it the Redis lookup), socket sends an eighth, the rest gunicorn's "
                   "and gevent's plumbing.")
    aof, replica = _find(runs, "durability aof: POST 24 items"), _find(runs, "durability replica: POST 24 items")
    if aof and replica and replica["rps"] < DURABILITY_GOALS["replica"] * aof["rps"]:
        other = (replica.get("cpu") or {}).get("other", 0)
        out.append(f"What bounds `WRITE_DURABILITY=replica`: the replica Redis and three Sentinels share these "
                   f"CPUs with the stack (\"other\", {other:.2f} cores during the run); on hosts of their own, "
                   "as in production, the web keeps those.")
    return "\n\n".join(out)


def _post_bound(results):
    """Where the CPUs went during the crawler burst: what bounds the POST path on this machine."""
    burst = _find(results["runs"], "crawler burst POST 24 items")
    cores = burst.get("cpu") if burst else None
    if not cores:
        return ""
    spent = ", ".join(f"{name} {value:.2f}" for name, value in cores.items())
    per_post = 1000 * cores["web"] / max(1, burst["rps"])
    return (f"What bounds the 24-item POST burst: {os.cpu_count()} CPUs shared by everything. During the burst "
            f"they went to {spent} (cores). The web spends {per_post:.2f} ms of CPU per POST (gunicorn's HTTP "
            "parsing, the one-pass decode of 24 items, the accept script's round trip, gevent), where the ceiling's "
            "POST only reads the body. The drain leaves the CPUs to the web for the first "
            "0.8 x DRAIN_LAG_BUDGET_S of a burst, then writes the backlog at full speed. "
            "`python -m bench.profile post` shows the split inside a web worker.")


SUMMARY_START = "<!-- bench:start (written by make bench) -->"
SUMMARY_END = "<!-- bench:end -->"


def summary_block(results):
    """The summary of the latest run in docs/benchmarks.md: targets, the POST bound, every run, the audit."""
    target_lines = "\n".join(f"| {name} | {measured} | {'met' if ok else '**missed**'} |"
                             for name, measured, ok in targets(results))
    audits = results["audits"]
    lost = sum(a["lost"] for a in audits)
    duplicated = sum(a["duplicated"] for a in audits)
    return (f"{SUMMARY_START}\n| target | measured | |\n|---|---|---|\n{target_lines}\n\n"
            f"{_post_bound(results)}\n\n{_lag_bound(results)}\n\n{_other_bounds(results)}\n\n{_table(results)}\n\n"
            f"Zero-loss audit of the {len(audits)} write scenarios: "
            f"{sum(a['accepted'] for a in audits):,} records accepted, {lost} lost, {duplicated} duplicated.\n"
            f"{SUMMARY_END}")


def update_summary(results, doc):
    """Replace the block between the markers in `doc` (docs/benchmarks.md) with the latest run's."""
    text = doc.read_text()
    if SUMMARY_START in text and SUMMARY_END in text:
        start, end = text.index(SUMMARY_START), text.index(SUMMARY_END) + len(SUMMARY_END)
        doc.write_text(text[:start] + summary_block(results) + text[end:])


def write_report(results, directory):
    """Write report.md, burst.png and latency.png into `directory`; update the summary in docs/benchmarks.md."""
    burst_chart(results, directory / "burst.png")
    latency_chart(results, directory / "latency.png")
    t = results["targets"]
    target_lines = "\n".join(f"| {name} | {measured} | {'met' if ok else '**missed**'} |"
                             for name, measured, ok in targets(results))
    audit_lines = "\n".join(
        f"| {a['scenario']} | {a['kind']} | {a['accepted']:,} | {a['client_saw_202']:,} | {a['in_mysql']:,} "
        f"| {a['lost']} | {a['duplicated']} |" for a in results["audits"])
    report = f"""# Spillway load bench

One run of `make bench` on {platform.node()} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},
{results['seconds'] / 60:.1f} minutes. wrk -t2 on 127.0.0.1, {int(os.environ.get('BENCH_SECONDS', 10))} s per run
(the crawler burst and the paced writes 2x), 2 s wrk timeout. The stack runs as `make run` runs it
(supervisord, Flower, request logs on), and everything shares the machine: wrk, gunicorn (2 gevent workers),
the Celery drain (2 processes), Flower, Redis and MariaDB. Figures are ratios within this run; absolute numbers
move with the machine.

References, same gunicorn settings: **ceiling**, a bare WSGI hello-world (GET answers a constant, POST reads
the body and answers 202); **naive**, Flask with a new MySQL connection per request, one autocommit INSERT per
record and no cache (the design Spillway replaces); **seeds**, Flask publishing one Celery task per POST
(`task.delay(items)`) and a Celery worker writing each task's records with one multi-row upsert. "bound by"
is where the CPUs went during each Spillway run (cores; "CPU" when less than a fifth of them was idle).

## Targets

| target | measured | |
|---|---|---|
{target_lines}

{_post_bound(results)}

{_lag_bound(results)}

{_other_bounds(results)}

## Every run

{_table(results)}

Hot reads: random keys of the 410,000 seeded items, cache warm. Cold reads: the cache flushed before each run,
so every first read of a key goes to MySQL. Crawler burst: 24-item POSTs as fast as they are accepted, then the
drain ({t['burst_drain_seconds']:.1f} s to empty the queue after the burst). Mixed: 90% hot GETs, 10% 24-item POSTs.
Paced: 24-item POSTs on a clock at half the measured drain rate (50 connections, paced by wrk), and at 3/8 of it
when the lag misses at half.

## Zero-loss audit

Records accepted = the server's count of records it answered 202 for (`spillway_records_accepted_total`);
wrk's own count of 202s can be lower, as wrk stops counting answers in flight when its time is up.

| scenario | kind | accepted | wrk saw 202 for | in MySQL | lost | duplicated |
|---|---|---:|---:|---:|---:|---:|
{audit_lines}

## Drain

Raw PyMySQL `executemany` of 1,000-row upserts, one commit each: {t['raw_rows_per_s']:,.0f} rows/s.
The drain, on a backlog of 500,000 records queued as 24-record writes: {t['drain_rows_per_s']:,.0f} rows/s
({t['drain_rows_per_s'] / t['raw_rows_per_s']:.2f}x).

![crawler burst](burst.png)

![latency per scenario](latency.png)
"""
    (directory / "report.md").write_text(report)
    update_summary(results, directory.parent / "docs" / "benchmarks.md")
