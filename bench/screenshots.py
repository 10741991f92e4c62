"""Screenshots of Flower's task list as operators see it: the stack idle, then under load.

    python -m bench.screenshots      (or: make screenshots)

Runs the stack as `make run` does (under var/screens, ports of its own), leaves it
idle for IDLE_S, takes docs/flower-idle.png, sends the soak's mixed traffic for
LOAD_S and takes docs/flower-load.png, with headless Chromium (Debian's
`chromium`), then stops everything it started.
"""
import os
import shutil
import subprocess
import sys
import time

from bench.soak import Traffic
from bench.stack import BenchStack
from deploy.processes import ROOT

IDLE_S = float(os.environ.get("SCREENS_IDLE_S", 150))
LOAD_S = float(os.environ.get("SCREENS_LOAD_S", 60))
DOCS = ROOT / "docs"


def chromium():
    """The Chromium binary, or exit with what to install."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("bench.screenshots: needs Chromium (apt-get install chromium)")


def shot(browser, url, path, width=1800, height=1000):
    """A headless screenshot of url (basic auth in the URL) into path."""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", "--virtual-time-budget=8000",
                    f"--screenshot={path}", url], check=True, capture_output=True, timeout=120)
    print(f"screenshots: {path.relative_to(ROOT)}", file=sys.stderr)


def main():
    browser = chromium()
    stack = BenchStack(var=ROOT / "var" / "screens", mysql_port=43307, redis_port=46380)
    stack.start()
    flower = f"http://bench:bench@127.0.0.1:{stack.env['FLOWER_PORT']}/tasks"
    traffic = None
    try:
        time.sleep(IDLE_S)
        shot(browser, flower, DOCS / "flower-idle.png")
        traffic = Traffic(stack.web.url)
        traffic.start()
        time.sleep(LOAD_S)
        shot(browser, flower, DOCS / "flower-load.png")
    finally:
        if traffic:
            traffic.finish()
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
