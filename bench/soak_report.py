"""bench/soak.md and its charts from a soak's samples, and the verdict: every series levels off, no undocumented
error, every accepted write in MySQL exactly once."""
import platform
import time
from pathlib import Path

HERE = Path(__file__).parent
GROWTH = 0.10  # after warm-up, the last third's mean may exceed the middle third's by this share...
SLACK = {"bytes": 4 * 2**20, "files": 8, "count": 3}  # ...plus this much (noise), by unit


def level(values, unit):
    """(levels off?, middle third's mean, last third's mean) of a series sampled after warm-up."""
    third = len(values) // 3
    if third < 2:
        return True, 0.0, 0.0
    middle = sum(values[third:2 * third]) / third
    last = sum(values[2 * third:]) / len(values[2 * third:])
    return last <= middle * (1 + GROWTH) + SLACK[unit], middle, last


def series(rows):
    """{name: (unit, [values])} of every series the verdict looks at."""
    # Cached items are evictable (volatile-lru): with fresh keys they fill Redis up to maxmemory, by design, and
    # Redis evicts the oldest when it gets there. What must level off is everything else.
    out = {"Redis used_memory less the evictable cache":
           ("bytes", [r["redis_used"] - r.get("redis_cache", 0) for r in rows]),
           "MySQL connections": ("count", [r["mysql_connections"] for r in rows])}
    for name in sorted({p for r in rows for p in r["processes"]}):
        less = name == "redis"
        out[f"{name} RSS" + (" less the evictable cache" if less else "")] = (
            "bytes", [r["processes"].get(name, {}).get("rss", 0) - (r.get("redis_cache", 0) if less else 0)
                      for r in rows])
        out[f"{name} open files"] = ("files", [r["processes"].get(name, {}).get("files", 0) for r in rows])
    for table in ("writes",):  # bounded by RECEIPT_TTL; items grow with the key space, events by retention
        out[f"MySQL {table} table"] = ("count", [r["tables"].get(table, {}).get("rows", 0) for r in rows])
    return out


def charts(rows, prefix):
    """PNG charts next to the report; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] / 60 for r in rows]
    made = []

    def figure(name, title, plots, ylabel):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for label, values in plots:
            ax.plot(t, values, label=label)
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(HERE / f"{prefix}-{name}", dpi=90)
        plt.close(fig)
        made.append(f"{prefix}-{name}")

    kinds = sorted({k for r in rows for k in r["redis_keys"]})
    figure("redis.png", "Redis: used_memory, and the evictable cache's share (MiB); keys by kind (thousands)",
           [("used_memory MiB", [r["redis_used"] / 2**20 for r in rows]),
            ("cached items MiB (estimated)", [r.get("redis_cache", 0) / 2**20 for r in rows])]
           + [(f"{k} (k)", [r["redis_keys"].get(k, 0) / 1000 for r in rows]) for k in kinds], "MiB / thousands")
    figure("queue.png", "Queue depth (records) and accept-to-persist lag p99 (ms, bucket bound)",
           [("depth", [r["queue_depth"] for r in rows]),
            ("lag p99 ms", [_ms(r["lag_p99_ms"]) for r in rows])], "records / ms")
    names = sorted({p for r in rows for p in r["processes"]})
    figure("rss.png", "RSS per program (MiB, its processes summed)",
           [(n, [r["processes"].get(n, {}).get("rss", 0) / 2**20 for r in rows]) for n in names], "MiB")
    figure("files.png", "Open files per program, and MySQL connections",
           [(n, [r["processes"].get(n, {}).get("files", 0) for r in rows]) for n in names]
           + [("MySQL connections", [r["mysql_connections"] for r in rows])], "count")
    figure("tables.png", "MySQL table rows (thousands; InnoDB's estimate)",
           [(name, [r["tables"].get(name, {}).get("rows", 0) / 1000 for r in rows])
            for name in ("items", "events", "writes", "dead_letters")], "thousands")
    return made


def _ms(bound):
    return 20_000 if bound == "inf" else (bound or 0)


MIXES = {"mixed": "40% item batches of 1-10, 20% event batches of 1-5, 35% reads, 5% deletes; every write with a "
                  "fresh Idempotency-Key",
         "writes": "one-item writes only, each with a fresh Idempotency-Key"}


def write_report(rows, statuses, audit, minutes, rate, mix, overrides, documented_503, name="soak"):
    """Write bench/<name>.md; return True if the verdict passes."""
    warm = rows[len(rows) // 6:]  # the first sixth (one window) is warm-up
    checks = []
    for what, (unit, values) in series(warm).items():
        ok, middle, last = level(values, unit)
        shown = (lambda v: f"{v / 2**20:.1f} MiB") if unit == "bytes" else (lambda v: f"{v:.0f}")
        checks.append((f"{what} levels off", ok, f"middle third {shown(middle)}, last third {shown(last)}"))
    peak, limit = max(r["redis_used"] for r in rows), rows[-1].get("redis_max", 0)
    if limit:
        checks.append(("Redis below 90% of maxmemory all along", peak < 0.9 * limit,
                       f"peak {peak / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB ({peak / limit:.0%})"))
    bad = {s: n for s, n in statuses.items()
           if not (s.startswith("2") or s == "404 not_found" or (s.startswith("503") and s[4:] in documented_503))}
    checks.append(("no answer but 2xx, 404 for unwritten keys, and documented 503s", not bad,
                   ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))))
    events_ok = audit["events_in_mysql"] + audit["events_purged"] == audit["events_accepted"]
    checks.append(("every accepted item write in MySQL, as last written",
                   audit["items_wrong"] == 0 and audit["items_unexpected"] == 0,
                   f"{audit['items_checked']} keys checked, {audit['items_wrong']} wrong, "
                   f"{audit['items_unexpected']} unexpected"))
    checks.append(("every accepted event stored once (in MySQL, or purged by retention)",
                   events_ok and audit["events_doubled"] == 0,
                   f"{audit['events_accepted']} accepted = {audit['events_in_mysql']} in MySQL + "
                   f"{audit['events_purged']} purged; {audit['events_doubled']} doubled"))
    passed = all(ok for _, ok, _ in checks)
    made = charts(rows, name)
    last = rows[-1]
    lines = [
        "# Soak: a day of traffic in minutes",
        "",
        f"`make soak` on {platform.node()} ({platform.machine()}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}:"
        f" {minutes:g} minutes at {rate:g} requests/s ({MIXES[mix]}), the stack as `make run` runs it (supervisord, "
        "Flower, request logs on). Windows scaled down so that a day's churn passes several times in the run: "
        + ", ".join(f"`{k}={v:g}`" if isinstance(v, float) else f"`{k}={v}`" for k, v in overrides.items()) + ".",
        "",
        f"**Verdict: {'PASS' if passed else 'FAIL'}.** After warm-up (the first sixth), each series' last third is "
        f"within {GROWTH:.0%} (plus a little noise) of its middle third.",
        "",
        "| check | | figures |",
        "|---|---|---|",
        *(f"| {name} | {'ok' if ok else '**FAILED**'} | {figures} |" for name, ok, figures in checks),
        "",
        f"At the end: Redis {last['redis_used'] / 2**20:.1f} MiB (of which cached items, evictable, about "
        f"{last.get('redis_cache', 0) / 2**20:.1f} MiB), keys {last['redis_keys']}, queue {last['queue_depth']} "
        "records. Cached items are evicted (volatile-lru) when Redis reaches maxmemory: with fresh keys they grow "
        "until then by design, so the verdict looks at Redis less the cache.",
        "",
        *(f"![{name}]({name})" for name in made),
        "",
    ]
    (HERE / f"{name}.md").write_text("\n".join(lines))
    return passed
