"""A Spillway cluster on Linux network namespaces: each role on a host of its own, as an operator would place them.

  db       MariaDB (and, in front of it, the latency proxy every host reaches it through)
  redis1   Redis, the first primary      redis2  its replica
  s1 s2 s3 the three Sentinels            broker  Celery's own Redis
  web1 web2  gunicorn                     drain1 drain2  Celery workers (the drain)

Every host runs what `make run ROLE=...` would run there, pointed at the
others by address: REDIS_URL is a redis+sentinel:// URL over the three
Sentinels, MYSQL_URL the proxy on the db host. The test process is on the same
bridge (10.77.0.1) and drives the clients and the faults.
"""
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter

import pymysql
import redis as redis_lib
import requests

from deploy.bootstrap import DATABASE, DB_USER
from deploy.processes import LiveProcess, wait_for
from deploy.servers import BrokerRedis, MariaDB, Redis, RedisReplica, Sentinel
from tests.cluster.net import Net
from webapp.config import documented_settings, load_settings
from webapp.storage.migrate import migrate
from webapp.storage.mysql import connect_kwargs

HOSTS = {"db": 10, "redis1": 11, "redis2": 12, "broker": 14, "s1": 15, "s2": 16, "s3": 17,
         "web1": 21, "web2": 22, "drain1": 31, "drain2": 32}
PASSWORD = "cluster-test-pw"
MYSQL_PASSWORD = "cluster-db-pw"
API_KEY = "cluster-key"
SERVICE = "spillway"
PROXY_PORT = 3307
# quick failure detection and short waits, so that a fault plays out in seconds
SETTINGS = {"WRITE_CLAIM_IDLE": 5, "DB_WRITE_TIMEOUT": 4, "DRAIN_TASK_SECONDS": 2, "WEB_WORKERS": 1, "WORKER_CONCURRENCY": 1,
            "DB_BUDGET_WEB_HOSTS": 2, "DB_BUDGET_WORKER_HOSTS": 2, "REDIS_TIMEOUT": 2, "LOG_LEVEL": "info"}


class Cluster:
    """The servers and the app's processes, placed on their hosts; start() and stop()."""

    def __init__(self, var, mode):
        self.var, self.mode = var, mode
        self.net = Net(HOSTS)
        self.apps: dict[str, LiveProcess] = {}
        self.delay_file = var / "mysql-delay"
        a = self.net.address
        self.mariadb = MariaDB(var / "db", 3306).placed(a("db"), self.net.ns("db"))
        self.redis = {
            "redis1": Redis(var / "redis1", 6379, password=PASSWORD, keep_config=True, min_replicas=1)
            .placed(a("redis1"), self.net.ns("redis1")),
            "redis2": RedisReplica(var / "redis2", 6379, password=PASSWORD, keep_config=True, min_replicas=1,
                                   replica_of=6379, replica_of_host=a("redis1")).placed(a("redis2"),
                                                                                         self.net.ns("redis2")),
        }
        self.sentinels = [Sentinel(var / name, 26379, n + 1, 6379, PASSWORD, SERVICE, down_after_ms=2000,
                                   primary_host=a("redis1")).placed(a(name), self.net.ns(name))
                          for n, name in enumerate(("s1", "s2", "s3"))]
        self.broker = BrokerRedis(var / "broker", 6379, maxmemory=64 * 1024**2, password=PASSWORD) \
            .placed(a("broker"), self.net.ns("broker"))
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        self.env = {k: v for k, v in os.environ.items() if k not in {e for e, _, _ in documented_settings()}}
        self.env.update({k: str(v) for k, v in SETTINGS.items()},
                        PYTHONUNBUFFERED="1", API_KEYS=f"{API_KEY}:write+read+admin",
                        WRITE_DURABILITY=mode, FLOWER_BASIC_AUTH="admin:cluster",
                        REDIS_URL=f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0",
                        CELERY_BROKER_URL=self.broker.url(),
                        MYSQL_URL=f"mysql://{DB_USER}:{MYSQL_PASSWORD}@{a('db')}:{PROXY_PORT}/{DATABASE}")

    # --- start and stop -------------------------------------------------------------

    def start(self):
        """The namespaces, then the servers, the schema, the web and drain hosts; return once all answer."""
        shutil.rmtree(self.var, ignore_errors=True)
        self.var.mkdir(parents=True)
        self.net.up()
        self.mariadb.start()
        self.mariadb.ensure_database(DATABASE, DB_USER, MYSQL_PASSWORD)
        self.delay(0)
        self.proxy = self.spawn("db", "mysql-delay", [sys.executable, "-m", "tests.cluster.delay",
                                                      f"{self.net.address('db')}:{PROXY_PORT}",
                                                      f"{self.net.address('db')}:3306", str(self.delay_file)])
        for server in (*self.redis.values(), self.broker, *self.sentinels):
            server.start()
        settings = self.settings()
        wait_for(lambda: self._answers_sql(settings), timeout=30, message="MySQL through the proxy")
        migrate(settings)
        wait_for(self.replica_linked, timeout=60, interval=0.5, message="the Sentinels to know the replica")
        for host in ("web1", "web2"):
            self.start_web(host)
        for host in ("drain1", "drain2"):
            self.start_drain(host)
        wait_for(lambda: all(self._healthy(h) for h in ("web1", "web2")), timeout=60, message="the web hosts")

    def stop(self):
        """Every process, then the namespaces (whatever state they are in)."""
        for proc in self.apps.values():
            proc.stop(timeout=10)
        for server in (*self.sentinels, *self.redis.values(), self.broker, self.mariadb):
            try:
                server.stop(timeout=10)
            except Exception:  # the namespaces' teardown kills whatever is left
                pass
        self.net.down()

    def spawn(self, host, name, argv, env=None):
        """A process on a host, its output in var/<name>.log."""
        proc = LiveProcess(name, [*self.net.prefix(host), *argv], env or self.env, self.var / "log")
        self.apps[name] = proc
        return proc

    def start_role(self, host, role):
        """`make run ROLE=<role>` on a host, as an operator runs it there (supervisord and its one program)."""
        var = self.var / host
        var.mkdir(parents=True, exist_ok=True)
        env_file = var / ".env"
        env_file.write_text(f"API_KEYS={self.env['API_KEYS']}\nFLOWER_BASIC_AUTH=admin:cluster\n"
                            f"PRIVATE_REDIS_PASSWORD={PASSWORD}\n")
        env = {**self.env, "SPILLWAY_ENV_FILE": str(env_file), "VAR_DIR": str(var), "PORT": "8000",
               "BIND_HOST": self.net.address(host), "FLOWER_PORT": "5555"}
        return self.spawn(host, host, [sys.executable, "-m", "deploy.run", "--role", role], env)

    def start_web(self, host):
        return self.start_role(host, "web")

    def start_drain(self, host):
        return self.start_role(host, "worker")

    def kill_host(self, host):
        """Everything on a host dies at once (SIGKILL), as when the host fails."""
        for pid in self.net.pids(host):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.apps[host].proc.wait(10)

    def settings(self):
        """The cluster's settings, as the test process reaches the servers."""
        return load_settings({"mysql_url": self.env["MYSQL_URL"], "redis_url": self.env["REDIS_URL"],
                              "api_keys": API_KEY, "celery_broker_url": self.env["CELERY_BROKER_URL"]})

    def url(self, host):
        return f"http://{self.net.address(host)}:8000"

    def _healthy(self, host):
        try:
            return requests.get(self.url(host) + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _answers_sql(self, settings):
        try:
            pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 5)).close()
            return True
        except pymysql.err.Error:
            return False

    # --- what the faults use ---------------------------------------------------------

    def sentinel(self, index=0):
        """A client of a Sentinel."""
        s = self.sentinels[index]
        return redis_lib.Redis(host=s.host, port=s.port, password=PASSWORD, socket_timeout=2)

    def primary_host(self):
        """The host the Sentinels name as primary."""
        for index in range(3):
            try:
                address = self.sentinel(index).sentinel_get_master_addr_by_name(SERVICE)[0]
                address = address.decode() if isinstance(address, bytes) else address
                return next(h for h in self.net.hosts if self.net.address(h) == address)
            except (redis_lib.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def node(self, host):
        """A client of one Redis server."""
        server = self.redis[host]
        return redis_lib.Redis(host=server.host, port=server.port, password=PASSWORD, socket_timeout=2)

    def replica_linked(self):
        """True when the Sentinels know a replica whose link to the primary is up, and agree on the primary."""
        try:
            replicas = self.sentinel().sentinel_slaves(SERVICE)
            primaries = {self.sentinel(i).sentinel_get_master_addr_by_name(SERVICE) for i in range(3)}
        except redis_lib.RedisError:
            return False
        return len(primaries) == 1 and any(r.get("master-link-status") == "ok" and not r.get("is_disconnected")
                                           for r in replicas)

    def delay(self, seconds):
        """Latency the proxy adds to MySQL, each way."""
        self.delay_file.write_text(str(seconds))

    def wait_drained(self, timeout=120):
        """Until the queue on the current primary is empty."""
        def empty():
            try:
                return int(self.node(self.primary_host()).get("spillway:queue:depth") or 0) == 0
            except redis_lib.RedisError:
                return False
        wait_for(empty, timeout=timeout, interval=0.5, message="the queue to drain")

    def healthy_again(self):
        """Heal every cut, start what is stopped, and wait until the topology is whole."""
        for host in HOSTS:
            self.net.heal(host)
        self.delay(0)
        for server in self.redis.values():
            if not server.pid:
                server.start()
        for name, proc in list(self.apps.items()):
            if not proc.alive() and name in ("web1", "web2"):
                self.start_web(name)
            elif not proc.alive() and name in ("drain1", "drain2"):
                self.start_drain(name)
        wait_for(self.replica_linked, timeout=60, interval=0.5, message="the replica to be linked again")
        wait_for(lambda: all(self._healthy(h) for h in ("web1", "web2")), timeout=60, message="the web hosts")


class Announcements:
    """What the Sentinels announce (`+try-failover`, `+switch-master`, ...), with when the test heard it."""

    def __init__(self, cluster, channels=("+try-failover", "+switch-master")):
        self.heard: list[tuple[str, float]] = []
        self.stop = threading.Event()
        self.sentinels = cluster.sentinels
        self.channels = channels
        self.threads = [threading.Thread(target=self._listen, args=(s,), daemon=True) for s in self.sentinels]
        for t in self.threads:
            t.start()
        time.sleep(0.5)  # subscribed before the fault

    def _listen(self, sentinel):
        client = redis_lib.Redis(host=sentinel.host, port=sentinel.port, password=PASSWORD, socket_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*self.channels)
        while not self.stop.is_set():
            try:
                message = pubsub.get_message(timeout=0.2)
            except redis_lib.RedisError:
                time.sleep(0.2)
                continue
            if message:
                self.heard.append((message["channel"].decode(), time.monotonic()))
        client.close()

    def first(self, channel):
        """When the test first heard `channel` from any Sentinel (None: never)."""
        return min((at for name, at in self.heard if name == channel), default=None)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)


class Writers:
    """Clients writing through both web hosts, each write retried with its Idempotency-Key until a 202.

    Even writes are 3 items (2 keys of their own, and the writer's one hot key,
    overwritten by every write of the writer); odd writes are 2 events, each
    with a marker. Every 202 is kept for the checker.
    """

    def __init__(self, urls, tag, threads=6, pace=0.02, key=API_KEY):
        self.urls, self.tag, self.pace, self.key = urls, tag, pace, key
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted = []  # (write_id, kind, what it carried, when its 202 came: time.monotonic())
        self.hot: dict[str, tuple[int, dict]] = {}  # hot key -> (order, its last accepted data)
        self.answers: Counter[str] = Counter()
        self.last_202 = 0.0
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, n):
        sessions = [requests.Session() for _ in self.urls]
        write = 0
        while not self.stop.is_set():
            if write % 2 == 0:
                hot = f"{self.tag}-hot-{n}"
                items = {f"{self.tag}-{n}-{write}-{i}": {"w": write, "i": i} for i in range(2)}
                items[hot] = {"w": write}
                path, body, carried = "/api/v1/items", {"items": [{"key": k, "data": d} for k, d in items.items()]}, items
            else:
                markers = [f"{self.tag}-{n}-{write}-{i}" for i in range(2)]
                path, body, carried = "/api/v1/events", {"events": [{"name": "c", "data": {"m": m}} for m in markers]}, markers
            key, attempt = str(uuid.uuid4()), 0
            while not self.stop.is_set():
                host = (n + write + attempt) % len(self.urls)  # spread, and move to the other host on a retry
                attempt += 1
                try:
                    r = sessions[host].post(self.urls[host] + path, data=json.dumps(body), timeout=10,
                                            headers={"Authorization": f"Bearer {self.key}",
                                                     "Content-Type": "application/json", "Idempotency-Key": key})
                except requests.RequestException as err:
                    self.count(f"client {type(err).__name__}")
                    time.sleep(0.2)
                    continue
                code = r.json().get("error", {}).get("code", "") if r.status_code != 202 else ""
                self.count(f"{r.status_code} {code}".strip())
                if r.status_code == 202:
                    with self.lock:
                        self.accepted.append((r.json()["write_id"], "items" if write % 2 == 0 else "events", carried,
                                              time.monotonic()))
                        if write % 2 == 0:
                            self.hot[f"{self.tag}-hot-{n}"] = (write, carried[f"{self.tag}-hot-{n}"])
                        self.last_202 = time.monotonic()
                    break
                if r.status_code not in (503, 429):
                    break  # a client error: counted, and the checker fails on it
                time.sleep(0.2)
            write += 1
            time.sleep(self.pace)

    def count(self, what):
        with self.lock:
            self.answers[what] += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def check(cluster, writers):
    """The Jepsen-style checker on a cluster (see audit)."""
    return audit(cluster.settings(), cluster.url("web1"), writers)


def audit(settings, web_url, writers):
    """The Jepsen-style checker: every 202 in MySQL exactly once, every receipt answering, no key gone back."""
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 60))
    try:
        with con.cursor() as cur:
            cur.execute("SELECT k, data FROM items WHERE k LIKE %s", (f"{writers.tag}-%",))
            items = {k: json.loads(d) for k, d in cur.fetchall()}
            cur.execute("SELECT JSON_VALUE(data, '$.m'), COUNT(*) FROM events WHERE JSON_VALUE(data, '$.m') LIKE %s "
                        "GROUP BY 1", (f"{writers.tag}-%",))
            events = dict(cur.fetchall())
    finally:
        con.close()
    lost, doubled, unanswered, records, lost_at = [], [], [], 0, []
    for _, kind, carried, answered in writers.accepted:
        records += len(carried)
        if kind == "items":
            gone = [k for k, d in carried.items() if "-hot-" not in k and items.get(k) != d]
        else:
            gone = [m for m in carried if events.get(m, 0) == 0]
            doubled += [m for m in carried if events.get(m, 0) > 1]
        lost += gone
        if gone:
            lost_at.append(answered)
    back = [k for k, (_, data) in writers.hot.items() if items.get(k) != data]  # a hot key not at its last write
    for write_id, _, _, _ in writers.accepted:
        r = requests.get(f"{web_url}/api/v1/writes/{write_id}", timeout=10)
        if r.status_code != 200 or r.json()["status"] not in ("persisted",):
            unanswered.append((write_id, r.status_code))
    return {"writes": len(writers.accepted), "records": records, "lost": len(lost), "doubled": len(doubled),
            "went_back": len(back), "receipts_missing": len(unanswered), "examples": (lost + doubled + back)[:5],
            "last_lost_202": max(lost_at, default=None),
            "answers": dict(writers.answers)}


def marker_count(cluster, marker):
    """How many events in MySQL carry `marker`."""
    settings = cluster.settings()
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 30))
    try:
        with con.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM events WHERE JSON_VALUE(data, '$.m') = %s", (marker,))
            return cur.fetchone()[0]
    finally:
        con.close()


def kill(server):
    """SIGKILL a server (its host died) and reap it."""
    server.kill()


