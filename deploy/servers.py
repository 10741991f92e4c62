"""Private MariaDB and Redis servers under a var/ directory (kept 0700), started and stopped by pid.

`make run` runs them as supervisord programs (program() gives the section), so
a crashed server is restarted within seconds; the tests, the bench and `make
seed` start them directly (start()), each with its own var/ directory and ports,
so a test run never touches the servers of a running stack. No secret goes on
a command line: Redis reads its password from var/redis.conf (0600), and SQL
reaches the mariadb client on its standard input.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from webapp.config import redis_userinfo

MIN_REPLICAS_MAX_LAG = 5  # seconds (see Redis.__init__'s min_replicas)


class ServerError(RuntimeError):
    """A private server could not be installed, started or stopped."""


def alive(pid):
    """Return True if a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _read_pid(path):
    """Return the pid stored in a pid file, or None."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def port_open(port, host="127.0.0.1"):
    """Return True if something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class PrivateServer:
    """A server process owned by this checkout: its files live under var_dir."""

    name = "server"
    stop_timeout = 60
    # supervisord starts lower priorities first and stops them last: the primary and MariaDB,
    # then the replica, then the Sentinels, so no Sentinel sees the primary stop and fails over.
    priority = 1

    # Where it listens; a server for other hosts listens on an address of this one. netns: the Linux
    # network namespace it runs in (the multi-host tests give each host one), None for this host's.
    host = "127.0.0.1"
    netns = None

    def __init__(self, var_dir, port):
        self.var_dir = Path(var_dir).resolve()
        self.datadir = self.var_dir / self.name
        self.port = int(port)
        self.run_dir = self.var_dir / "run"
        self.log_dir = self.var_dir / "log"
        self.proc = None

    def placed(self, host, netns=None):
        """The server on another address (and network namespace); returns itself."""
        self.host, self.netns = host, netns
        return self

    @property
    def pidfile(self):
        """Path of the pid file the server writes."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def pid(self):
        """The running server's pid, or None if it is not running."""
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        pid = _read_pid(self.pidfile)
        if pid and alive(pid) and self._runs_here(pid):
            return pid
        return None

    def _runs_here(self, pid):
        """True if process `pid` is this server (a stale pid file may name another process).

        Its working directory, not its command line: Redis rewrites its process
        title. Both servers change into their data directory.
        """
        try:
            return os.readlink(f"/proc/{pid}/cwd") == str(self.datadir)
        except OSError:
            return False

    def command(self):
        """The argv that runs the server in the foreground."""
        raise NotImplementedError

    def prepare(self):
        """Create config files and data directories (idempotent)."""

    def make_dirs(self):
        """var/ (private to this user: data, logs and secrets live there), run/ and log/."""
        self.var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.var_dir.chmod(0o700)
        for d in (self.run_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)

    def program(self):
        """The supervisord [program:...] section that runs this server (see supervisord.conf)."""
        return "\n".join([
            f"[program:{self.name}]",
            "command=" + " ".join(self.command()),
            f"directory={self.var_dir}",
            f"priority={self.priority}",
            "autorestart=true",
            "startsecs=1",
            "startretries=10",
            "stopsignal=TERM",
            f"stopwaitsecs={self.stop_timeout}",
            f"stdout_logfile={self.log_dir / (self.name + '.out')}",
            "stdout_logfile_maxbytes=10MB",
            "redirect_stderr=true",
            "",
        ])

    def ping(self):
        """Return True once the server answers its protocol."""
        raise NotImplementedError

    def start(self, timeout=60):
        """Start the server unless it already runs; return once it answers."""
        if self.pid:
            self.wait_ready(timeout)
            return
        if port_open(self.port, self.host):
            raise ServerError(
                f"port {self.port} is taken by another process; "
                f"choose another port for the private {self.name}"
            )
        self.make_dirs()
        self.prepare()
        log = open(self.log_dir / f"{self.name}.out", "ab")  # noqa: SIM115 - handed to the child, closed below
        # start_new_session: a terminal Ctrl-C must not kill the database
        # before the app above it has flushed its work.
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*prefix, *self.command()], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.var_dir,
        )
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout=60):
        """Wait until the server answers; raise ServerError with its log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            if self.ping():
                return
            time.sleep(0.1)
        raise ServerError(f"{self.name} did not start; last log lines:\n{self.log_tail()}")

    def log_tail(self, lines=20):
        """The last lines of the server's logs, for error messages."""
        out = []
        for path in sorted(self.log_dir.glob(f"{self.name}*")):
            out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def signal(self, sig):
        """Send a signal to the running server (e.g. SIGSTOP to make it hang)."""
        pid = self.pid
        if pid is None:
            raise ServerError(f"{self.name} is not running")
        os.kill(pid, sig)

    def stop(self, timeout=None):
        """Stop the server with SIGTERM and wait; SIGKILL if it does not exit."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGCONT)  # a stopped (hung) process cannot exit
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + (timeout or self.stop_timeout)
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.pid == pid:
                if self.proc.poll() is not None:
                    break
            elif not alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            if self.proc is not None:
                self.proc.wait(10)
        self.proc = None

    def kill(self):
        """SIGKILL the server (a crash, for fault tests) and reap it."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.pid == pid:
            self.proc.wait(10)
        else:
            while alive(pid):
                time.sleep(0.05)
        self.proc = None


class MariaDB(PrivateServer):
    """A private MariaDB server: datadir var/mysql, socket and pid under var/run."""

    name = "mariadb"

    def __init__(self, var_dir, port, max_connections=200):
        super().__init__(var_dir, port)
        self.datadir = self.var_dir / "mysql"
        self.cnf = self.var_dir / "mariadb.cnf"
        self.socket = self.run_dir / "mariadb.sock"
        self.max_connections = max_connections

    def prepare(self):
        """Write my.cnf and initialise the datadir on first use."""
        self.cnf.write_text(
            "[client]\n"
            f"socket={self.socket}\nport={self.port}\n\n"
            "[mysqld]\n"
            f"datadir={self.datadir}\nsocket={self.socket}\nport={self.port}\n"
            f"pid-file={self.pidfile}\nlog-error={self.log_dir / 'mariadb.err'}\n"
            f"bind-address={self.host}\nskip-name-resolve\n"
            "character-set-server=utf8mb4\ncollation-server=utf8mb4_nopad_bin\n"
            f"max_connections={self.max_connections}\n"
            "innodb_buffer_pool_size=512M\ninnodb_log_file_size=256M\n"
            # Durability: every COMMIT is on disk before the drain acks the queue.
            "innodb_flush_log_at_trx_commit=1\n"
            "max_allowed_packet=64M\n"
        )
        if not (self.datadir / "mysql").is_dir():
            self.datadir.mkdir(parents=True, exist_ok=True)
            tool = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if not tool:
                raise ServerError("mariadb-install-db not found: install the mariadb-server package")
            result = subprocess.run(
                [tool, f"--defaults-file={self.cnf}", "--user=root",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                shutil.rmtree(self.datadir, ignore_errors=True)
                raise ServerError(f"mariadb-install-db failed:\n{result.stdout}{result.stderr}")

    def command(self):
        """mariadbd in the foreground; --defaults-file must come first."""
        return [shutil.which("mariadbd") or "/usr/sbin/mariadbd",
                f"--defaults-file={self.cnf}", "--user=root"]

    def ping(self):
        """True once the server answers over its socket."""
        return self.sql("SELECT 1", check=False).returncode == 0

    def sql(self, statements, check=True):
        """Run SQL as root over the socket with the mariadb client (on stdin: never on a command line)."""
        result = subprocess.run(
            ["mariadb", f"--defaults-file={self.cnf}", "--user=root", "--default-character-set=utf8mb4", "--batch",
             "--skip-column-names"],
            input=statements + ";\n", capture_output=True, text=True,
        )
        if check and result.returncode != 0:
            raise ServerError(f"SQL failed: {result.stderr.strip()}")
        return result

    def ensure_database(self, database, user, password):
        """Create the database and an app user for 127.0.0.1 and localhost (and any host, if it listens on one)."""
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        stmts = [f"CREATE DATABASE IF NOT EXISTS `{database}` "
                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"]
        for host in ("127.0.0.1", "localhost", *(("%",) if self.host != "127.0.0.1" else ())):
            stmts += [
                f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{quoted}'",
                f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{quoted}'",
                f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'",
                # The start-up budget check and /metrics read these server figures.
                f"GRANT PROCESS ON *.* TO '{user}'@'{host}'",
            ]
        self.sql(";\n".join(stmts))

    def url(self, database, user, password):
        """The MYSQL_URL of this server for the app user."""
        from urllib.parse import quote
        return f"mysql://{quote(user)}:{quote(password, safe='')}@{self.host}:{self.port}/{database}"


class Redis(PrivateServer):
    """A private redis-server: AOF on, a password, and an eviction policy that spares the queue."""

    name = "redis"
    stop_timeout = 60
    # Only keys with a TTL may be evicted, shortest TTL first: cache entries.
    # The queue, pending writes, receipts and idempotency keys have none.
    policy = "volatile-ttl"

    def __init__(self, var_dir, port, maxmemory=2 * 1024**3, appendfsync="everysec", password="",
                 replica_of=None, keep_config=False, min_replicas=0, replica_of_host="127.0.0.1"):
        super().__init__(var_dir, port)
        self.maxmemory = int(maxmemory)
        self.appendfsync = appendfsync
        self.password = password
        self.replica_of = replica_of  # the primary's port, for a replica
        self.replica_of_host = replica_of_host
        # With replicas: a primary that no replica has acknowledged for min-replicas-max-lag seconds
        # refuses writes, so one cut off from the others (a split brain) stops taking 202s it would lose.
        self.min_replicas = min_replicas
        # With Sentinel, its CONFIG REWRITE records who replicates whom after a failover:
        # a restart must keep that, not reset the topology (and resync the newer side away).
        self.keep_config = keep_config
        self.conf = self.var_dir / f"{self.name}.conf"

    def prepare(self):
        """Write var/<name>.conf (0600: it holds the password) and create the data directory."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.keep_config and self.conf.exists():
            return
        lines = [
            *_redis_conf_head(self), "repl-diskless-sync-delay 0",
            # Durable queue: every acknowledged write is in the AOF; fsync once a
            # second (the window docs/guarantees.md states) unless configured otherwise.
            "appendonly yes", f"appendfsync {self.appendfsync}", 'save ""',
            f"maxmemory {self.maxmemory}", f"maxmemory-policy {self.policy}", "maxmemory-samples 10",
            "maxclients 10000",
        ]
        if self.password:
            lines += [f"requirepass {_redis_quote(self.password)}", f"masterauth {_redis_quote(self.password)}"]
        if self.replica_of:
            lines.append(f"replicaof {self.replica_of_host} {self.replica_of}")
        if self.min_replicas:
            lines += [f"min-replicas-to-write {self.min_replicas}", f"min-replicas-max-lag {MIN_REPLICAS_MAX_LAG}"]
        _write_private(self.conf, lines)

    def command(self):
        """redis-server with its own config file (the system's is not read)."""
        return [shutil.which("redis-server") or "/usr/bin/redis-server", str(self.conf)]

    def ping(self):
        """True on a literal PONG (a loading server answers LOADING)."""
        return _redis_ping(self.port, self.password, self.host)

    def url(self, db=0):
        """The REDIS_URL of this server (with its password)."""
        return f"redis://{redis_userinfo(self.password)}{self.host}:{self.port}/{db}"


class BrokerRedis(Redis):
    """A private Redis for Celery's messages only (CELERY_BROKER_URL), apart from the write queue's.

    A Redis the queue has filled refuses kombu's writes, so a broker there could
    deliver no drain task just when one is needed. This one holds only a few task
    messages (one per drain slot, redrives, retention); nothing may be evicted.
    """

    name = "redis-broker"
    policy = "noeviction"
    stop_timeout = 20


class RedisReplica(Redis):
    """A replica of the private Redis (for make run-ha and the failover tests)."""

    name = "redis-replica"
    priority = 2


class Sentinel(PrivateServer):
    """One of three Redis Sentinels watching the private primary (service `spillway`)."""

    stop_timeout = 10
    priority = 3

    def __init__(self, var_dir, port, number, primary_port, password="", service="spillway", down_after_ms=2000,
                 primary_host="127.0.0.1"):
        self.name = f"sentinel-{number}"
        super().__init__(var_dir, port)
        self.primary_port = primary_port
        self.primary_host = primary_host
        self.password = password
        self.service = service
        self.down_after_ms = down_after_ms
        self.conf = self.datadir / "sentinel.conf"  # Sentinel rewrites it with what it learns

    def prepare(self):
        """Write its config on first use (0600); afterwards Sentinel keeps it up to date itself."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.conf.exists():
            return
        pw = _redis_quote(self.password)
        lines = [*_redis_conf_head(self),
                 f"sentinel monitor {self.service} {self.primary_host} {self.primary_port} 2",
                 f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.service} 10000",
                 f"sentinel parallel-syncs {self.service} 1"]
        if self.password:
            lines += [f"requirepass {pw}", f"sentinel auth-pass {self.service} {pw}"]
        _write_private(self.conf, lines)

    def command(self):
        """redis-server in Sentinel mode, with its own (writable) config file."""
        return [shutil.which("redis-server") or "/usr/bin/redis-server", str(self.conf), "--sentinel"]

    def ping(self):
        """True once it answers PONG."""
        return _redis_ping(self.port, self.password, self.host)


def _redis_conf_head(server):
    """The first lines of a redis-server or Sentinel config: where it listens, and its files under var/."""
    return [f"port {server.port}", f"bind {server.host}", f"dir {server.datadir}", f"pidfile {server.pidfile}",
            f"logfile {server.log_dir / (server.name + '.log')}", "daemonize no"]


def _write_private(path, lines):
    """Write a config file readable by this user only (it holds a password)."""
    write_private(path, "\n".join(lines) + "\n")


def write_private(path, text):
    """Replace `path` with `text`, readable by this user only from the first byte.

    write_text() then chmod() leaves a window in which the secret sits in a file
    the umask made world-readable; here the file is born 0600 under a temporary
    name and renamed over the old one, so no reader ever sees it wider or half-written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask; a stale tmp keeps its own
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _redis_ping(port, password, host="127.0.0.1"):
    """True on a literal PONG from a redis-server or Sentinel (after AUTH if it has a password)."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            if password:
                s.sendall(_resp("AUTH", password))
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_quote(text):
    """A value for redis.conf, in double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resp(*args):
    """A command in Redis's wire protocol."""
    out = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        out += f"${len(data)}\r\n".encode() + data + b"\r\n"
    return out
