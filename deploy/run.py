"""`make run`: bring the whole stack up under supervisord, in the foreground.

1. .env gets generated API_KEYS and FLOWER_BASIC_AUTH on first run.
2. Private MariaDB and Redis start under var/ unless MYSQL_URL / REDIS_URL are set.
3. The schema is created, then supervisord runs web, worker and flower.
4. Once /readyz answers, the URLs and keys are printed.
5. Ctrl-C: supervisord stops the programs gracefully, then the servers stop.
"""
import getpass
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deploy.bootstrap import Stack, ensure_env_file
from webapp.config import ROOT, ConfigError, env_file_values, load_settings


def _child_environment(settings, urls):
    """The environment supervisord and its programs run with."""
    env = dict(os.environ)
    for name, value in env_file_values().items():
        env.setdefault(name, value)  # Flower reads FLOWER_* from the environment itself
    env.update(urls)
    env.update(
        VAR_DIR=settings.var_dir,
        PORT=str(settings.port),
        FLOWER_PORT=str(settings.flower_port),
        LOG_LEVEL=settings.log_level,
        WORKER_PROCESSES=str(settings.worker_process_count),
        WEB_STOP_WAIT=str(settings.web_graceful_timeout + 5),
        SPILLWAY_USER=getpass.getuser(),
        SUPERVISOR_PASSWORD=secrets.token_urlsafe(18),
        PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def write_supervisorctl_conf(var_dir, password):
    """var/run/supervisorctl.conf: what `supervisorctl -c` needs to reach this supervisord (0600)."""
    path = Path(var_dir) / "run" / "supervisorctl.conf"
    path.write_text("[supervisorctl]\n"
                    f"serverurl=unix://{Path(var_dir).resolve()}/run/supervisor.sock\n"
                    f"username=spillway\npassword={password}\n")
    path.chmod(0o600)
    return path


def _wait_ready(url, proc, timeout=120):
    """Poll /readyz until it answers 200; False if supervisord exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _banner(settings, env):
    """What a person needs to use the stack."""
    host = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
    key = env.get("API_KEYS", "").split(",")[0]
    return "\n".join([
        "",
        "Spillway is up.",
        f"  API         http://{host}:{settings.port}/api/v1/items   (readiness: /readyz)",
        f"  Flower      http://127.0.0.1:{settings.flower_port}/   basic auth {env.get('FLOWER_BASIC_AUTH', '')}",
        f"  API key     {key}",
        f"  MySQL       {env['MYSQL_URL']}",
        f"  Redis       {env['REDIS_URL']}",
        f"  Try:  curl -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"          -d '{{\"items\":[{{\"key\":\"hello\",\"data\":{{\"n\":1}}}}]}}' http://{host}:{settings.port}/api/v1/items",
        f"        curl http://{host}:{settings.port}/api/v1/items/hello",
        f"  Logs        {settings.var_dir}/log/web.log, worker.log, flower.log (JSON lines)",
        "  Ctrl-C stops everything.",
        "",
    ])


def main():
    """Run the stack until Ctrl-C; return the exit status."""
    added = ensure_env_file()
    if added:
        print(f"Generated {', '.join(added)} into .env")
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"spillway: {err}", file=sys.stderr)
        return 2
    stack = Stack.from_settings(settings)
    supervisord = None
    stopping = []

    def on_signal(signum, frame):
        # Ctrl-C reaches supervisord too (same process group); a TERM sent to us alone is forwarded.
        stopping.append(signum)
        if supervisord is not None and supervisord.poll() is None and signum != signal.SIGINT:
            supervisord.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        urls = stack.start()
        if stopping:
            return 130
        env = _child_environment(settings, urls)
        for sub in ("run", "log"):
            os.makedirs(os.path.join(settings.var_dir, sub), exist_ok=True)
        write_supervisorctl_conf(settings.var_dir, env["SUPERVISOR_PASSWORD"])
        supervisord = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "supervisord"),
             "-c", str(ROOT / "supervisord.conf"), "--nodaemon"],
            env=env, cwd=ROOT,
        )
        ready_url = f"http://127.0.0.1:{settings.port}/readyz"
        if _wait_ready(ready_url, supervisord):
            print(_banner(settings, env), flush=True)
        elif supervisord.poll() is None:
            print(f"spillway: {ready_url} did not answer 200 yet; see the logs above", file=sys.stderr)
        while supervisord.poll() is None:
            try:
                supervisord.wait()
            except KeyboardInterrupt:
                pass
        return 0 if stopping else supervisord.returncode
    finally:
        if supervisord is not None and supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)
            supervisord.wait()
        print("Stopping Redis and MariaDB...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
