"""Run wrk against 127.0.0.1 for a fixed time and parse what it prints."""
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).parent / "lua"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class Result:
    """One wrk run."""

    name: str
    connections: int
    seconds: float = 0.0
    requests: int = 0
    rps: float = 0.0
    latency_ms: dict = field(default_factory=dict)  # percentile -> ms
    non2xx: int = 0
    timeouts: int = 0
    socket_errors: int = 0  # connect, read and write errors (timeouts apart)
    accepted_requests: int | None = None  # counted by the Lua script (202 answers)
    raw: str = ""

    @property
    def p50(self):
        return self.latency_ms.get(50)

    @property
    def p99(self):
        return self.latency_ms.get(99)

    @property
    def timeout_share(self):
        return self.timeouts / self.requests if self.requests else 0.0


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * _UNITS[unit]


def parse(name, connections, out):
    """A Result from wrk's output."""
    r = Result(name, connections, raw=out)
    if m := re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m))", out):  # "1.00m" for a minute
        r.requests, r.seconds = int(m.group(1)), _ms(m.group(2)) / 1000
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        r.rps = float(m.group(1))
    for pct, value in re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M):
        r.latency_ms[int(pct)] = _ms(value)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        r.non2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r.socket_errors = int(m.group(1)) + int(m.group(2)) + int(m.group(3))
        r.timeouts = int(m.group(4))
    if m := re.search(r"ACCEPTED_REQUESTS (\d+)", out):
        r.accepted_requests = int(m.group(1))
    return r


def run(name, url, connections, seconds, script=None, env=None, threads=2, timeout_s=2):
    """Run wrk for `seconds` (bounded) and return its Result."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the bench only loads 127.0.0.1")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "--latency"]
    if script:
        cmd += ["-s", str(LUA / script)]
    cmd.append(url)
    env = {**(os.environ if env is None else env), "LUA_PATH": f"{LUA}/?.lua;;"}  # the scripts require writes.lua
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    return parse(name, connections, proc.stdout)
