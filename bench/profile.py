"""Profile one bench scenario: wrk load on the bench stack while py-spy samples a gunicorn worker.

Run: python -m bench.profile hot|cold|post|events [connections] [seconds]
Prints the functions with the most samples (own time, and with callees).
Needs py-spy (pip install py-spy); seeds and warms the bench stack first.
"""
import collections
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import loadgen
from bench.stack import API_KEY, BenchStack
from deploy.seed import seed
from webapp.storage import keys
from webapp.storage.services import Services

SCENARIOS = {"hot": "get_random.lua", "cold": "get_random.lua", "post": "post_items.lua", "events": "post_events.lua"}


def top(raw_path, count=30):
    """(own, inclusive) sample shares per function from py-spy's raw output."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        n = int(n)
        total += n
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    def fmt(counter):
        return "\n".join(f"{100 * v / total:5.1f}%  {k}" for k, v in counter.most_common(count))
    return f"{total} samples\n--- own time\n{fmt(own)}\n--- with callees\n{fmt(inclusive)}"


def main(scenario, connections=50, seconds=10):
    """Load one scenario and profile the first web worker."""
    stack = BenchStack()
    settings = stack.start()
    svc = Services(settings, role="worker")
    try:
        stack.spillway(False)
        seed(settings, 410_000)
        stack.spillway(True)
        web = stack.web
        if scenario == "hot":
            svc.cache.warm_all()
        elif scenario == "cold":
            for chunk in iter(lambda: list(svc.redis.scan_iter(keys.ITEM + "*", count=10_000))[:10_000], []):
                svc.redis.unlink(*chunk)
        env = {"KEYS": "410000", "API_KEY": API_KEY, "RUN": f"prof{int(time.time())}"}
        result = {}
        load = threading.Thread(target=lambda: result.update(r=loadgen.run(
            scenario, web.url, connections, seconds + 4, script=SCENARIOS[scenario], env={**env})))
        load.start()
        time.sleep(2)
        with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(web.children()[0]), "-d", str(seconds), "-r", "250",
                            "-f", "raw", "-o", raw.name, "--nonblocking"], capture_output=True, check=True)
            load.join()
            print(f"{scenario} c{connections}: {result['r'].rps:,.0f} req/s")
            print(top(raw.name))
    finally:
        svc.close()
        stack.stop()


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
