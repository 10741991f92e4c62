"""Prometheus metrics: per-request series from every gunicorn worker, cluster series from Redis.

Web workers count in prometheus-client's multiprocess mode (files under
PROMETHEUS_MULTIPROC_DIR, set up by gunicorn.conf.py), so /metrics sums all
workers of this gunicorn, including workers replaced by a reload. The drain's
figures (rows persisted, dead letters, batch sizes, accept-to-persist lag)
and the queue's state are kept in Redis by the drain and read at scrape time,
so they cover every worker host, not one process.
"""
import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

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

_children = {}


def count_request(route, method, status, seconds):
    """Count one answered request (label children are cached: this runs on every request)."""
    key = (route, method, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(route, method, status), LATENCY.labels(route, method))
    pair[0].inc()
    pair[1].observe(seconds)


def bucket(value, bounds):
    """The label of the smallest bucket holding `value` ('inf' past the last)."""
    return next((str(b) for b in bounds if value <= b), "inf")


class RedisCollector:
    """Cluster-wide series read from Redis at scrape time."""

    def __init__(self, queue):
        self.queue = queue

    def collect(self):
        """Queue depth and age, live drains, and the drain's counters and histograms."""
        stats = self.queue.stats()
        counters = {k.decode(): int(v) for k, v in self.queue.redis.hgetall(self.queue.stats_key).items()}
        yield GaugeMetricFamily("spillway_write_queue_depth", "Records accepted and not yet persisted", stats["depth"])
        yield GaugeMetricFamily("spillway_write_queue_oldest_age_seconds", "Age of the oldest queued write",
                                stats["oldest_age_s"])
        yield GaugeMetricFamily("spillway_drain_workers_alive", "Drain processes that reported in the last 30 s",
                                stats["alive"])
        persisted = CounterMetricFamily("spillway_records_persisted_total", "Records written to MySQL", labels=["kind"])
        dead = CounterMetricFamily("spillway_records_dead_lettered_total", "Records MySQL rejected", labels=["kind"])
        for kind in ("items", "events"):
            persisted.add_metric([kind], counters.get(f"persisted_{kind}", 0))
            dead.add_metric([kind], counters.get(f"dead_{kind}", 0))
        yield persisted
        yield dead
        yield CounterMetricFamily("spillway_drain_batches_total", "Batches written", counters.get("batches", 0))
        yield _histogram("spillway_drain_batch_size_records", "Records per batch", counters, "batch_size_le_",
                         BATCH_BUCKETS, counters.get("batch_records", 0), counters.get("batches", 0))
        yield _histogram("spillway_write_lag_seconds", "Time from acceptance to acknowledgement, per record",
                         counters, "lag_le_", LAG_BUCKETS_MS, counters.get("lag_ms_sum", 0) / 1000,
                         counters.get("lag_count", 0), scale=1000)


def _histogram(name, doc, counters, prefix, bounds, total, count, scale=1):
    """A histogram family from per-bucket counters stored in Redis."""
    buckets, running = [], 0
    for b in bounds:
        running += counters.get(f"{prefix}{b}", 0)
        buckets.append((str(b / scale), running))
    buckets.append(("+Inf", count))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets, total)
    return family


def render(services):
    """The /metrics page: this gunicorn's workers summed, plus the cluster series."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    registry.register(RedisCollector(services.queue))
    return generate_latest(registry)
