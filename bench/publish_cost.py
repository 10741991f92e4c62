"""Why writes go to a Redis Stream and not to Celery: the cost of each on the request path.

Measures, one process, same Redis, sequentially (latency per call):
  xadd      a plain XADD of 24 records
  accept    Spillway's accept script (XADD + versions + pending cache + receipt)
  celery    Celery apply_async of a task carrying the same 24 records
Run: python -m bench.publish_cost (uses REDIS_URL, or the bench stack's Redis).
"""
import json
import statistics
import time

from bench.data import movie_json


def _time(fn, n):
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def measure(settings, n=2000):
    """{name: median microseconds per call}."""
    from celery import Celery

    from webapp.storage.queue import WriteQueue
    from webapp.storage.records import Item
    from webapp.storage.redis_client import connect

    client = connect(settings, blocking=False)
    queue = WriteQueue(client, settings)
    records = [Item(f"tt{i:07d}", movie_json(i)) for i in range(24)]
    rows = [[r.key, r.data] for r in records]  # built once: only the publish is timed
    blob = json.dumps(rows, separators=(",", ":"))
    publisher = Celery("bench", broker=settings.redis_url)
    publisher.conf.task_default_queue = "bench-publish"
    task = publisher.signature("bench.noop")
    runs = {
        "xadd": lambda: client.xadd("bench:stream", {"r": blob}),
        "accept": lambda: queue.append(records, "bench"),
        "celery": lambda: task.apply_async(args=(rows,)),
    }
    for fn in runs.values():
        _time(fn, 200)  # warm connections and scripts
    result = {name: _time(fn, n) for name, fn in runs.items()}
    client.delete("bench:stream", "bench-publish")
    publisher.close()
    client.close()
    return result


if __name__ == "__main__":
    from webapp.config import load_settings

    costs = measure(load_settings())
    for name, us in costs.items():
        print(f"{name:8s} {us:7.0f} us  ({us / costs['xadd']:.1f}x xadd)")
