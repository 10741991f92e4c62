"""`make run`: the whole stack under supervisord, in the foreground.

1. .env gets generated API_KEYS, FLOWER_BASIC_AUTH and PRIVATE_REDIS_PASSWORD on first run.
2. Processes left by an earlier run of this checkout are stopped; if that run is
   still going, it is named and this one exits 1 (never a crash loop on taken ports).
3. supervisord starts the private MariaDB and Redis (unless MYSQL_URL / REDIS_URL
   are set) as programs, so one that crashes is back within seconds; once they
   answer, the schema is created and worker, web and flower start.
4. Once /readyz answers, the URLs are printed (no secrets: they stay in .env).
5. Ctrl-C, SIGTERM, SIGHUP (the terminal closed) or a vanished stdout (`make run |
   tee log`, tee killed) all stop everything: supervisord stops flower, web, the
   worker (which commits its batch), then Redis and MariaDB.

supervisord runs in its own session, so the terminal's signals reach only this
process, which tells supervisord to stop (a SIGHUP would make it reload instead).
Every process of the stack carries SPILLWAY_STACK=<var dir> in its environment
(Redis overwrites its own with its process title, so the private servers are
also found by their pid files): that is how a later run finds what an earlier
one left.
"""
import getpass
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from xmlrpc.client import Fault

from deploy.bootstrap import Stack, ensure_env_file, flower_environment
from deploy.servers import ServerError, alive, port_open, write_private
from webapp.config import ROOT, ConfigError, env_file_values, load_settings, masked

MARK = "SPILLWAY_STACK"
# What each role runs (make run ROLE=...): the programs supervisord starts; data runs only the private servers.
ROLES = {"all": ("worker", "web", "flower"), "web": ("web",), "worker": ("worker",), "flower": ("flower",),
         "data": ()}
NEEDS = {"web": ("MYSQL_URL", "REDIS_URL"), "worker": ("MYSQL_URL", "REDIS_URL", "CELERY_BROKER_URL"),
         "flower": ("REDIS_URL", "CELERY_BROKER_URL")}
BIN = Path(sys.executable).parent
STOP_GRACE = 60  # seconds supervisord gets to stop everything before it is killed


def say(*lines):
    """Print to the terminal; a vanished stdout is noticed by the main loop, not raised here."""
    try:
        print(*lines, sep="\n", flush=True)
    except OSError:
        pass


def stack_processes(var_dir):
    """Pids of live processes started by a run of this checkout (they carry the mark)."""
    mark = f"{MARK}={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def _parent(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def _terminate(pids, grace):
    """SIGTERM, then SIGKILL whatever is left after `grace` seconds."""
    _signal_all(pids, signal.SIGTERM)
    _signal_all(_wait_gone(pids, grace), signal.SIGKILL)


def _leftovers(var_dir, stack):
    """Every process of this checkout's stack still running: supervisord's tree and the private servers."""
    pids = stack_processes(var_dir)
    for server in stack.private:
        pid = server.pid  # reads the pid file and /proc: once
        if pid and pid not in pids:
            pids.append(pid)
    return pids


def clear_leftovers(var_dir, stack):
    """Stop what an earlier run of this checkout left; False if that run is still going."""
    pids = _leftovers(var_dir, stack)
    if not pids:
        return True
    for pid in pids:
        parent = _parent(pid)
        if "supervisord" in _cmdline(pid) and parent not in (0, 1) and "deploy.run" in _cmdline(parent):
            say(f"spillway: already running from this checkout (supervisord pid {pid}, started by "
                f"`make run` pid {parent}). Stop that one first: Ctrl-C in its terminal, or kill {parent}.")
            return False
    say(f"Stopping {len(pids)} processes left by an earlier run of this checkout:",
        *(f"  {pid} {_cmdline(pid)[:100]}" for pid in pids))
    supervisors = [p for p in pids if "supervisord" in _cmdline(p)]
    _signal_all(supervisors, signal.SIGTERM)  # it stops its programs in order
    _wait_gone(supervisors, STOP_GRACE)
    _terminate([p for p in pids if alive(p)], 30)
    return True


def _child_environment(settings, urls, var_dir):
    """The environment supervisord and its programs run with."""
    env = dict(os.environ)
    for name, value in env_file_values().items():
        if name.startswith("FLOWER_"):  # Flower reads these from the environment itself
            env.setdefault(name, value)
    # Everything else stays in .env, which the programs read themselves: a reload
    # (supervisorctl signal HUP web) then picks up changed keys.
    flower_environment(env, settings)
    for name in urls:  # the URLs given here win over a NAME_FILE they may have come from
        env.pop(f"{name}_FILE", None)
    env.update(urls)
    env.update({
        MARK: str(var_dir),
        "VAR_DIR": str(var_dir),
        "PORT": str(settings.port),
        "FLOWER_PORT": str(settings.flower_port),
        "LOG_LEVEL": settings.log_level,
        "WORKER_PROCESSES": str(settings.worker_process_count),
        "WEB_STOP_WAIT": str(settings.web_graceful_timeout + 5),
        "SPILLWAY_USER": getpass.getuser(),
        "SUPERVISOR_PASSWORD": secrets.token_urlsafe(18),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _ctl_password(ctl_conf):
    return next(line.split("=", 1)[1] for line in ctl_conf.read_text().splitlines() if line.startswith("password="))


def write_supervisor_files(var_dir, password, programs):
    """var/run/supervisord.d/servers.conf (the private servers) and var/run/supervisorctl.conf (0600)."""
    include = var_dir / "run" / "supervisord.d"
    include.mkdir(parents=True, exist_ok=True)
    (include / "servers.conf").write_text(programs)
    ctl = var_dir / "run" / "supervisorctl.conf"
    write_private(ctl, f"[supervisorctl]\nserverurl=unix://{var_dir}/run/supervisor.sock\n"
                       f"username=spillway\npassword={password}\n")
    return ctl


class Terminal:
    """What the terminal asks of us: a stop (Ctrl-C, SIGTERM, SIGHUP), or nothing if stdout vanished."""

    def __init__(self):
        self.stop = None
        self._poll = select.poll()
        self._poll.register(sys.stdout.fileno(), select.POLLERR | select.POLLHUP)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop = self.stop or signal.Signals(signum).name

    def check(self):
        """The reason to stop, if any (a vanished stdout counts as one)."""
        if self.stop is None and self._poll.poll(0):
            self.stop = "stdout closed"
        return self.stop


class LogRelay:
    """Shows supervisord's own log lines (programs starting, exiting, restarted) on the terminal."""

    def __init__(self, path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def relay(self):
        """Print what supervisord logged since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        if b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
            self.offset += len(data)
            say(data.decode(errors="replace").rstrip("\n"))


PROMISES = {"aof": "in Redis's AOF (fsynced every second)", "fsync": "fsynced to Redis's AOF",
            "replica": "on WRITE_MIN_REPLICAS Redis replicas too"}


def _banner(settings, urls, stack):
    """Where things are; secrets stay in .env."""
    host = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
    base = f"http://{host}:{settings.port}"
    env_file = os.environ.get("SPILLWAY_ENV_FILE", ".env")
    mysql = "private, var/mysql" if not settings.mysql_url else "yours"
    redis = "yours"
    if stack.redis:
        redis = f"private, var/redis, AOF fsync {stack.redis.appendfsync}"
        if stack.sentinels:
            ports = f":{stack.sentinels[0].port}-{stack.sentinels[-1].port}"
            redis += f", a replica on :{stack.ha[0].port} and Sentinels on {ports}"
    broker = "private, var/redis-broker, Celery's task messages only" if stack.broker else "yours"
    return "\n".join([
        "",
        "Spillway is up.",
        f"  API         {base}/api/v1/items   (readiness: /readyz, metrics: /metrics)",
        f"  Flower      http://127.0.0.1:{settings.flower_port}/   (user:password is FLOWER_BASIC_AUTH in {env_file})",
        f"  MySQL       {masked(urls['MYSQL_URL'])}   ({mysql})",
        f"  Redis       {masked(urls['REDIS_URL'])}   ({redis})",
        f"  Broker      {masked(urls['CELERY_BROKER_URL'])}   ({broker})",
        f"  Durability  WRITE_DURABILITY={settings.write_durability}: "
        f"a 202 means {PROMISES[settings.write_durability]}",
        f"  Try:  KEY=$(grep ^API_KEYS {env_file} | cut -d= -f2 | cut -d, -f1 | cut -d: -f1)",
        "        curl -X POST -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\",
        f"             -d '{{\"items\":[{{\"key\":\"hello\",\"data\":{{\"n\":1}}}}]}}' {base}/api/v1/items",
        f"        curl {base}/api/v1/items/hello",
        f"  Processes   .venv/bin/supervisorctl -c {Path(settings.var_dir).resolve()}/run/supervisorctl.conf status",
        f"  Logs        {settings.var_dir}/log/web.log, worker.log, flower.log (JSON lines)",
        "  Ctrl-C stops everything.",
        "",
    ])


def _port_setting(server):
    """The setting that moves a private server's port."""
    return {"mariadb": "PRIVATE_MYSQL_PORT", "redis-broker": "PRIVATE_BROKER_PORT"}.get(server, "PRIVATE_REDIS_PORT")


def _serve_role(settings, stack, supervisord, terminal, relay, ctl_conf, urls, role):
    """One role of a spread-out stack: say where things are once its programs run, then wait for a stop."""
    if role == "web":
        def ready():
            return _ready(f"http://127.0.0.1:{settings.port}/readyz")
    elif ROLES[role]:
        def ready():
            return _running(ctl_conf, ROLES[role])
    else:  # ROLE=data: its servers answered before this
        def ready():
            return True
    return _watch(supervisord, terminal, relay, ctl_conf, ROLES[role], ready,
                  lambda: _role_banner(settings, urls, stack, role),
                  f"spillway: ROLE={role} did not come up; see {settings.var_dir}/log/")


def _watch(supervisord, terminal, relay, ctl_conf, names, ready, banner, late):
    """Until a stop: stop at once if one of `names` refuses to start; print banner() once ready(), or `late`."""
    announced = False
    started = time.monotonic()
    programs = Programs(ctl_conf.parent.parent, _ctl_password(ctl_conf))
    while supervisord.poll() is None:
        relay.relay()
        if terminal.check():
            return 0
        if not announced and names and _said_refusal(programs.refusal(names), ctl_conf):
            return REFUSED
        if not announced and ready():
            say(banner())
            announced = True
        elif not announced and time.monotonic() - started > 120:
            say(late)
            announced = True
        time.sleep(0.5)
    return 0 if terminal.stop else supervisord.returncode or 1


def _running(ctl_conf, programs):
    """True once supervisord reports every one of `programs` RUNNING."""
    out = subprocess.run([str(BIN / "supervisorctl"), "-c", str(ctl_conf), "status", *programs],
                         capture_output=True, text=True).stdout
    return bool(programs) and all(f"{p} " in out and "RUNNING" in out.split(f"{p} ", 1)[1].split("\n")[0]
                                  for p in programs)


def _role_banner(settings, urls, stack, role):
    """What a role's host runs, and (ROLE=data) the URLs the other hosts need."""
    lines = ["", f"Spillway ROLE={role} is up."]
    if role == "data":
        lines += ["  Give the other hosts these (their .env, or the environment; the passwords are this host's):",
                  *(f"    {name}={masked(url)}" for name, url in urls.items() if url)]
        if settings.private_bind_host == "127.0.0.1":
            lines.append("  (PRIVATE_BIND_HOST is 127.0.0.1: set it to this host's address so that others reach them)")
    elif role == "web":
        host = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
        lines.append(f"  API         http://{host}:{settings.port}/api/v1/items   (readiness: /readyz)")
    elif role == "flower":
        lines.append(f"  Flower      http://127.0.0.1:{settings.flower_port}/")
    else:
        lines.append(f"  Drain       {settings.worker_process_count} Celery processes on {masked(urls['REDIS_URL'])}")
    lines += [f"  Logs        {settings.var_dir}/log/", "  Ctrl-C stops it.", ""]
    return "\n".join(lines)


def _ready(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def role_of(argv):
    """The role in `--role X` (make run ROLE=X), "all" without one."""
    return argv[argv.index("--role") + 1] if "--role" in argv else "all"


def main(argv=()):
    """Run the stack until asked to stop; return the exit status.

    --ha: with a Redis replica and Sentinels. --role web|worker|flower|data: one role of a stack
    spread over hosts (docs/scaling.md#roles): only that program, pointed at the others by URL, or
    only the private servers.
    """
    ha = "--ha" in argv
    role = role_of(argv)
    if role not in ROLES:
        say(f"spillway: ROLE must be one of {', '.join(ROLES)}, got {role!r}")
        return 2
    added = ensure_env_file()
    if added:
        say(f"Generated {', '.join(added)} into .env (git-ignored, readable by you only)")
    try:
        settings = load_settings()
        if ha:  # its own var/ (the Redis topology lives there), unless VAR_DIR says otherwise
            overrides = {} if "VAR_DIR" in os.environ or "VAR_DIR" in env_file_values() else {
                "var_dir": str(ROOT / "var" / "ha")}
            settings = load_settings(overrides)
            if settings.redis_url or settings.redis_sentinels:
                say("spillway: make run-ha starts its own Redis with a replica and Sentinels; unset REDIS_URL "
                    "and REDIS_SENTINELS")
                return 2
    except ConfigError as err:
        say(f"spillway: {err}")
        return 2
    missing = [name for name in NEEDS.get(role, ()) if not getattr(settings, name.lower())
               and not (name == "REDIS_URL" and settings.redis_sentinels)]
    if missing:
        say(f"spillway: ROLE={role} runs only the {role} here: set {', '.join(missing)} to the servers of the data "
            "host (make run ROLE=data prints them; docs/scaling.md#roles)")
        return 2
    var_dir = Path(settings.var_dir).resolve()
    stack = Stack.from_settings(settings, ha=ha, role=role)
    if not clear_leftovers(var_dir, stack):
        return 1
    ports = {"web": [("PORT", settings.port, "127.0.0.1")],
             "flower": [("FLOWER_PORT", settings.flower_port, "127.0.0.1")]}
    busy = [(name, port) for name, port, host in
            [pair for program in ROLES[role] for pair in ports.get(program, [])]
            + [(_port_setting(s.name), s.port, s.host) for s in stack.private]
            if port_open(port, host)]
    if busy:
        say(*(f"spillway: port {port} is in use by another program: set {name} to a free port" for name, port in busy))
        return 2
    stack.prepare()
    urls = stack.urls()
    env = _child_environment(settings, urls, var_dir)
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    ctl_conf = write_supervisor_files(var_dir, env["SUPERVISOR_PASSWORD"], stack.programs())
    terminal = Terminal()
    relay = LogRelay(var_dir / "log" / "supervisord.log")
    with open(var_dir / "log" / "supervisord.out", "ab") as out:
        supervisord = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(ROOT / "supervisord.conf"), "--nodaemon"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        return _serve(settings, stack, supervisord, terminal, relay, ctl_conf, urls, role)
    finally:
        say("Stopping (flower, web, worker, then Redis and MariaDB)...")
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)
            try:
                supervisord.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                supervisord.kill()
                supervisord.wait()
        relay.relay()
        _terminate(_leftovers(var_dir, stack), 15)
        say("Stopped.")


REFUSED = 3  # the exit status of a web or worker that refuses its settings or servers


class Programs:
    """What supervisord says about its programs, over its XML-RPC socket (as supervisorctl asks)."""

    def __init__(self, var_dir, password):
        self.var_dir, self.password = var_dir, password
        self.rpc = self._proxy()

    def _proxy(self):
        from xmlrpc.client import ServerProxy

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport("spillway", self.password, f"unix://{self.var_dir}/run/supervisor.sock")
        return ServerProxy("http://127.0.0.1", transport=transport)

    def start(self, names, timeout=60):
        """Start programs once supervisord answers; False if it never does.

        supervisord takes a moment to open its socket: a role with no servers to
        wait for (ROLE=worker) used to ask before it could answer, and its program
        was never started.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.rpc.supervisor.getState()["statename"] == "RUNNING":
                    break
            except Exception:  # not listening yet (socket missing, refused): the transport keeps
                self.rpc = self._proxy()  # its failed connection, so the next try needs a new one
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        for name in names:  # each RUNNING (past its startsecs) before the next, as `supervisorctl start` does
            try:
                self.rpc.supervisor.startProcess(name, True)
            except Fault:  # it did not start (a refusal, say): refusal() tells which and why
                pass
        return True

    def refusal(self, names=("worker", "web", "flower")):
        """(program, its refusal line) for a program that refused to start or gave up; else None.

        A refusal exits 3 at once: supervisord retries it a few times before it
        calls it FATAL, and none of those tries can succeed, so the first one is
        enough. Any program that ends FATAL counts too.
        """
        try:
            infos = self.rpc.supervisor.getAllProcessInfo()
        except Exception:
            return None
        for info in infos:
            if info["name"] not in names:
                continue
            state, status = info["statename"], info["exitstatus"]
            if state == "FATAL" or (state in ("BACKOFF", "EXITED") and status == REFUSED):
                return info["name"], _refusal_line(info.get("stdout_logfile", ""), info.get("spawnerr", ""))
        return None


def _said_refusal(refused, ctl_conf):
    """Print which program refused to start and why; True if one did."""
    if refused:
        name, line = refused
        say(f"spillway: {name} refused to start, so the stack is stopping:", f"  {line}",
            f"  (the whole log: {ctl_conf.parent.parent / 'log' / (name + '.log')})")
    return bool(refused)


def _refusal_line(logfile, spawnerr):
    """The last line of a program's log that says why it stopped (they start "spillway:")."""
    try:
        with open(logfile, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 65536))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        lines = []
    said = [line for line in lines if "spillway:" in line]
    return (said or [line for line in lines if line.strip()] or [spawnerr or "(no output)"])[-1].strip()[:2000]


def _serve(settings, stack, supervisord, terminal, relay, ctl_conf, urls, role="all"):
    """Start the role's programs once the servers answer, print the banner, then wait for a stop."""
    deadline = time.monotonic() + 120
    while not all(server.ping() for server in stack.private):
        relay.relay()
        if terminal.check() or supervisord.poll() is not None:
            return 0 if terminal.stop else 3
        if time.monotonic() > deadline:
            say("spillway: the private servers did not start; see var/log/mariadb.err and var/log/redis.log")
            return 3
        time.sleep(0.2)
    try:
        if role in ("all", "data", "web"):  # the schema: where the servers are, or by the web host
            stack.bootstrap()
    except (ServerError, OSError) as err:
        say(f"spillway: could not create the database: {err}")
        return 3
    if ROLES[role] and not Programs(ctl_conf.parent.parent, _ctl_password(ctl_conf)).start(ROLES[role]):
        say(f"spillway: supervisord did not answer; see {settings.var_dir}/log/supervisord.log")
        return 3
    if role != "all":
        return _serve_role(settings, stack, supervisord, terminal, relay, ctl_conf, urls, role)
    ready_url = f"http://127.0.0.1:{settings.port}/readyz"
    return _watch(supervisord, terminal, relay, ctl_conf, ROLES["all"], lambda: _ready(ready_url),
                  lambda: _banner(settings, urls, stack), f"spillway: {ready_url} did not answer 200 yet; see var/log/")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
