"""`make status`: the write queue, the drain, dead letters and the processes at a glance.

Settings are read like everywhere else (webapp.config.load_settings: the
environment, then .env). Without MYSQL_URL / REDIS_URL it reads the private
servers `make run` starts, at the URLs deploy/bootstrap.py gives them. It
only reads: the queue's state and the drain's counters in Redis (the same as
/readyz and /metrics), the dead_letters table in MySQL, and supervisorctl's
`status` when `make run` is running. The drain rate and the lag are measured
over WINDOW seconds.

Exit status: 0, or 1 if Redis or MySQL could not be read (what could be read is
printed all the same).
"""
import logging
import subprocess
import sys
import time
from pathlib import Path

import pymysql

from deploy.bootstrap import Stack
from webapp.config import ConfigError, load_settings, masked
from webapp.metrics import LAG_BUCKETS_MS, lag_counts, lag_quantile
from webapp.storage import keys
from webapp.storage.mysql import connect_kwargs
from webapp.storage.queue import IDEMPOTENCY_KEY_BYTES, WriteQueue
from webapp.storage.redis_client import connect
from webapp.storage.startup import memory_budget

BIN = Path(sys.executable).parent
WINDOW = 2.0  # seconds over which the drain rate and the recent lag are measured
QUANTILES = (0.5, 0.95, 0.99)
STATES = ("RUNNING", "STARTING", "BACKOFF", "STOPPING", "STOPPED", "EXITED", "FATAL", "UNKNOWN")


def server_urls(settings):
    """(MYSQL_URL, REDIS_URL): the settings' own, else the private servers' (None if `make run` never set them up here).

    Checked first, so that a status never creates the private servers' password files.
    """
    var = Path(settings.var_dir)
    never_ran = ((not settings.mysql_url and not (var / "mariadb.password").exists())
                 or (not settings.redis_url and not settings.private_redis_password
                     and not (var / "redis.password").exists()))
    if never_ran:
        return None
    urls = Stack.from_settings(settings).urls()
    return urls["MYSQL_URL"], urls["REDIS_URL"]


def human_bytes(n):
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def human_ms(ms):
    """250 -> '250 ms', 1500 -> '1.5 s'."""
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


def lag_summary(counts, lag_ms_sum):
    """'p50 <= 100 ms, p95 <= 250 ms, p99 <= 500 ms, mean 80 ms' from lag_counts(): each quantile is the
    upper bound of the bucket it falls in (the buckets of spillway_write_lag_seconds)."""
    parts = []
    for q in QUANTILES:
        bound = lag_quantile(counts, q)
        parts.append(f"p{round(q * 100)} <= {human_ms(bound)}" if bound != "inf"
                     else f"p{round(q * 100)} > {human_ms(LAG_BUCKETS_MS[-1])}")
    parts.append(f"mean {human_ms(round(lag_ms_sum / sum(counts.values())))}")
    return ", ".join(parts)


def persisted(counters):
    return counters.get("persisted_items", 0) + counters.get("persisted_events", 0)


def supervisor_status(var_dir):
    """(True, program lines) when `make run` is running here, else (False, why not)."""
    conf = var_dir / "run" / "supervisorctl.conf"
    if not conf.exists():
        return False, f"make run is not running (no {conf})"
    try:
        out = subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), "status"], capture_output=True,
                             text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"make run is not running (supervisorctl: {err})"
    lines = [line for line in out.stdout.splitlines() if line.split()[1:2] and line.split()[1] in STATES]
    if not lines:
        reason = (out.stdout + out.stderr).strip().splitlines()
        return False, f"make run is not running ({reason[0] if reason else 'supervisorctl answered nothing'})"
    return True, lines


def accepted(counters):
    """Writes accepted so far (the drain's counters count records; receipts and keys are per write)."""
    return counters.get("accepted_writes", 0)


def budget_lines(settings, stats, writes_per_s):
    """What a write leaves in Redis, as the formula docs/operations.md states, with today's figures."""
    budget = memory_budget(settings, stats["memory"]["max"])
    held = stats["idempotency_keys"] * IDEMPOTENCY_KEY_BYTES
    projected = IDEMPOTENCY_KEY_BYTES * writes_per_s * settings.idempotency_cache_s
    return [
        f"  redis budget  queued writes {human_bytes(stats['bytes'])} of {human_bytes(budget['queue'])} "
        "(WRITE_QUEUE_HIGH_WATER_BYTES; receipts included, in MySQL once persisted)",
        f"                Idempotency-Keys {stats['idempotency_keys']} x {IDEMPOTENCY_KEY_BYTES} B = "
        f"{human_bytes(held)} of {human_bytes(budget['idempotency'])}; at {writes_per_s:.0f} writes/s x "
        f"{settings.idempotency_cache_s:g} s (IDEMPOTENCY_CACHE_S) that is {human_bytes(projected)}"
        + (" (over budget: the oldest go first, MySQL still stops duplicates)"
           if projected > budget["idempotency"] else ""),
    ]


def report(settings, window=WINDOW, say=print):
    """Print the status; return the exit status."""
    var_dir = Path(settings.var_dir).resolve()
    status = 0
    say(f"Spillway status ({var_dir})")
    say(f"  Redis         {masked(settings.redis_url)}")
    say(f"  MySQL         {masked(settings.mysql_url)}")
    client = connect(settings, blocking=False)
    try:
        queue = WriteQueue(client, settings)
        stats = queue.stats()
        before, started = queue.counters(), time.monotonic()
        time.sleep(window)
        after, took = queue.counters(), time.monotonic() - started
    except Exception as err:  # a status must say what it could not read, not die of it
        say(f"  queue         Redis could not be read: {err}")
        stats = None
        status = 1
    finally:
        client.close()
    if stats is not None:
        say(f"  queue         depth {stats['depth']} records, {human_bytes(stats['bytes'])}, "
            f"oldest {stats['oldest_age_s']:.1f} s")
        counts_before = lag_counts(before)
        recent = {b: n - counts_before[b] for b, n in lag_counts(after).items()}
        if sum(recent.values()):
            lag = (f"{lag_summary(recent, after.get('lag_ms_sum', 0) - before.get('lag_ms_sum', 0))} "
                   f"(records persisted in the last {took:.1f} s)")
        elif after.get("lag_count"):
            lag = f"{lag_summary(lag_counts(after), after.get('lag_ms_sum', 0))} (none in the last {took:.1f} s; " \
                  "since the drain's counters began)"
        else:
            lag = "no record persisted yet"
        say(f"  lag           accept to persist: {lag}")
        say(f"  drain rate    {(persisted(after) - persisted(before)) / took:.0f} records/s "
            f"(measured over {took:.1f} s)")
        say(f"  drain workers {stats['alive']} alive")
        trouble = stats["trouble"]
        say("  retrying      " + (f"yes, for {trouble['for_s']} s: {trouble['error']}" if trouble else "no"))
        memory = stats["memory"]
        say(f"  redis memory  {human_bytes(memory['used'])} used of "
            + (human_bytes(memory["max"]) if memory["max"] else "no maxmemory") + (" (FULL)" if memory["full"] else ""))
        for line in budget_lines(settings, stats, (accepted(after) - accepted(before)) / took):
            say(line)
    try:
        con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 10))
        try:
            with con.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM dead_letters")
                dead = cur.fetchone()[0]
        finally:
            con.close()
        extra = f"; {stats['unreadable']} unreadable queue entries ({keys.UNREADABLE})" if stats is not None else ""
        say(f"  dead letters  {dead} (SELECT * FROM dead_letters){extra}")
    except pymysql.err.MySQLError as err:
        say(f"  dead letters  MySQL could not be read: {err}")
        status = 1
    running, lines = supervisor_status(var_dir)
    if running:
        say("  processes     (supervisorctl status)")
        for line in lines:
            say(f"    {line}")
    else:
        say(f"  processes     {lines}")
    return status


def main(argv):
    """`status [--window SECONDS]`."""
    window = float(argv[argv.index("--window") + 1]) if "--window" in argv else WINDOW
    logging.getLogger().addHandler(logging.NullHandler())  # failures are in the report, once
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"spillway: {err}")
        return 2
    urls = server_urls(settings)
    if urls is None:
        print(f"spillway: no stack here: `make run` has not set up {Path(settings.var_dir).resolve()} "
              "(or set MYSQL_URL and REDIS_URL)")
        return 1
    settings = load_settings({"mysql_url": urls[0], "redis_url": urls[1]})
    return report(settings, window)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
