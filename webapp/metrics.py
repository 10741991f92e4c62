"""Prometheus metrics: per-request series from every gunicorn worker, cluster series from Redis.

Web workers count in prometheus-client's multiprocess mode (files under
PROMETHEUS_MULTIPROC_DIR, set up by gunicorn.conf.py), so /metrics sums all
workers of this gunicorn, including workers replaced by a reload. The drain's
figures (rows persisted, dead letters, batch sizes, accept-to-persist lag)
and the queue's state are kept in Redis by the drain and read at scrape time,
so they cover every worker host, not one process.
"""
import os
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The drain counts batch sizes and lags into these buckets in Redis (tasks/drain.py).
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LAG_BUCKETS_MS = (10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2500, 5000, 10000, 30000,
                  60000, 300000)

REQUESTS = Counter("spillway_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("spillway_http_request_duration_seconds", "Time from request to response, queueing included",
                    ["route", "method"], buckets=LATENCY_BUCKETS)
CACHE = Counter("spillway_cache_requests_total", "Item reads by cache outcome", ["result"])
POOL = Counter("spillway_db_pool_events_total", "MySQL pool waits and timeouts", ["event"])
ACCEPTED = Counter("spillway_records_accepted_total", "Records queued by writes answered 202", ["kind"])
# Why the queue refused a write (nothing queued); the API's error code of the answer.
REFUSAL_REASONS = ("backpressure", "rate_limited", "queue_unavailable", "replication_timeout", "idempotency_key_reused")
REFUSALS = Counter("spillway_write_refusals_total", "Writes the queue refused, nothing queued", ["reason"])
for _reason in REFUSAL_REASONS:
    REFUSALS.labels(_reason)  # exported at 0 from the start, so rate() and alerts see every reason
# Per web worker; /metrics shows the highest of the live workers (a dead worker's value goes with it).
BREAKER_OPEN = Gauge("spillway_db_breaker_open",
                     "1 while reads fail fast after repeated MySQL connection failures (the breaker is open)",
                     ["database"], multiprocess_mode="livemax")

_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def count_request(route: str, method: str, status: str, seconds: float) -> None:
    """Count one answered request (label children are cached: this runs on every request)."""
    key = (route, method, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(route, method, status), LATENCY.labels(route, method))
    pair[0].inc()
    pair[1].observe(seconds)


def bucket(value: float, bounds: tuple[int, ...]) -> str:
    """The label of the smallest bucket holding `value` ('inf' past the last)."""
    return next((str(b) for b in bounds if value <= b), "inf")


def lag_counts(counters: dict[str, int]) -> dict[int | str, int]:
    """Records per lag bucket from the drain's counters: {upper bound in ms (or 'inf'): records}."""
    return {b: counters.get(f"lag_le_{b}", 0) for b in (*LAG_BUCKETS_MS, "inf")}


def lag_quantile(counts: dict[int | str, int], q: float) -> int | str | None:
    """The upper bound (ms, or 'inf') of the lag bucket holding the q-quantile; None when no record is counted."""
    total = sum(counts.values())
    running = 0
    for bound in (*LAG_BUCKETS_MS, "inf"):
        running += counts.get(bound, 0)
        if total and running >= q * total:
            return bound
    return None


class ClusterSource(Protocol):
    """What the cluster series are read from (webapp.storage.queue.WriteQueue)."""

    def stats(self) -> dict[str, Any]:
        """{"depth", "oldest_age_s", "alive"}."""

    def counters(self) -> dict[str, int]:
        """The drain's counters (records persisted, dead, batch and lag buckets)."""


class ClusterCollector:
    """Cluster-wide series read from Redis at scrape time."""

    def __init__(self, source: ClusterSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """Queue depth and age, live drains, and the drain's counters and histograms."""
        stats = self.source.stats()
        counters = self.source.counters()
        yield GaugeMetricFamily("spillway_write_queue_depth", "Records accepted and not yet persisted", stats["depth"])
        yield GaugeMetricFamily("spillway_write_queue_oldest_age_seconds", "Age of the oldest queued write",
                                stats["oldest_age_s"])
        yield GaugeMetricFamily("spillway_drain_workers_alive", "Drain processes that reported in the last 30 s",
                                stats["alive"])
        yield GaugeMetricFamily("spillway_write_queue_bytes", "Bytes of queued writes (items count twice)",
                                stats["bytes"])
        yield GaugeMetricFamily("spillway_drain_retrying", "1 while a batch waits out a MySQL server error",
                                1 if stats["trouble"] else 0)
        yield CounterMetricFamily("spillway_drain_retries", "Batch attempts MySQL refused for a reason of its own",
                                  counters.get("retries", 0))
        yield GaugeMetricFamily("spillway_idempotency_keys", "Idempotency-Keys held in Redis (IDEMPOTENCY_CACHE_S)",
                                stats.get("idempotency_keys", 0))
        yield CounterMetricFamily("spillway_duplicate_writes",
                                  "Retries of a write Redis no longer knew, stored once (its key claimed in MySQL)",
                                  counters.get("duplicate_writes", 0))
        yield GaugeMetricFamily("spillway_redis_memory_used_bytes", "Redis used_memory", stats["memory"]["used"])
        yield GaugeMetricFamily("spillway_redis_memory_max_bytes", "Redis maxmemory (0: none)", stats["memory"]["max"])
        persisted = CounterMetricFamily("spillway_records_persisted_total", "Records written to MySQL", labels=["kind"])
        dead = CounterMetricFamily("spillway_records_dead_lettered_total", "Records MySQL rejected", labels=["kind"])
        for kind in ("items", "events"):
            persisted.add_metric([kind], counters.get(f"persisted_{kind}", 0))
            dead.add_metric([kind], counters.get(f"dead_{kind}", 0))
        yield persisted
        yield dead
        redriven = CounterMetricFamily("spillway_dead_letters_redriven",
                                       "Dead letters sent back through the queue", labels=["kind"])
        for kind in ("items", "events"):
            redriven.add_metric([kind], counters.get(f"redriven_{kind}", 0))
        yield redriven
        purged = counters.get("dead_letters_purged", 0) + counters.get("retention_purged_dead_letters", 0)
        yield CounterMetricFamily("spillway_dead_letters_purged", "Dead letters purged (by hand or by retention)",
                                  purged)
        retention = CounterMetricFamily("spillway_retention_purged", "Rows purged by retention", labels=["what"])
        for what in ("receipts", "events", "tombstones", "dead_letters"):
            retention.add_metric([what], counters.get(f"retention_purged_{what}", 0))
        yield retention
        yield GaugeMetricFamily("spillway_queue_unreadable_entries", "Queue entries the drain could not read",
                                stats.get("unreadable", 0))
        yield CounterMetricFamily("spillway_drain_batches_total", "Batches written", counters.get("batches", 0))
        yield _histogram("spillway_drain_batch_size_records", "Records per batch", counters, "batch_size_le_",
                         BATCH_BUCKETS, counters.get("batch_records", 0), counters.get("batches", 0))
        yield _histogram("spillway_write_lag_seconds", "Time from acceptance to acknowledgement, per record",
                         counters, "lag_le_", LAG_BUCKETS_MS, counters.get("lag_ms_sum", 0) / 1000,
                         counters.get("lag_count", 0), scale=1000)


def _histogram(name: str, doc: str, counters: dict[str, int], prefix: str, bounds: tuple[int, ...],
               total: float, count: int, scale: int = 1) -> HistogramMetricFamily:
    """A histogram family from per-bucket counters stored in Redis."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for b in bounds:
        running += counters.get(f"{prefix}{b}", 0)
        buckets.append((str(b / scale), running))
    buckets.append(("+Inf", count))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets, total)
    return family


def render(source: ClusterSource) -> bytes:
    """The /metrics page: this gunicorn's workers summed, plus the cluster series."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    # gunicorn.conf.py sets this for the web server (the one reader of settings leaves it alone:
    # it is prometheus-client's own variable, not a Spillway setting).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ClusterCollector(source))
    return generate_latest(registry)
