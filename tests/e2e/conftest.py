"""End-to-end fixtures: private MariaDB and Redis under var/test on their own ports.

The same Stack as `make run` (deploy/bootstrap.py), on separate ports and a
separate var/, so a running stack is never touched. Tables are truncated and
Redis flushed before each test that asks for `fresh`; live servers are separate
processes, so rollbacks would not help.
"""
import dataclasses
import json
import os
import shutil
import subprocess

import pymysql
import pytest
import redis as redis_lib

from deploy.bootstrap import DB_USER, Stack, _secret_file
from deploy.processes import CeleryWorker, Flower, WebServer, free_port, wait_for
from tests.e2e.helpers import API_KEY, FLOWER_PASSWORD, FLOWER_USER, MYSQL_PORT, OTHER_KEY, REDIS_PORT, VAR
from webapp.config import documented_settings, load_settings, secret_settings
from webapp.storage.migrate import MIGRATIONS
from webapp.storage.mysql import connect_kwargs
from webapp.storage.services import Services

TABLES = ("items", "events", "dead_letters")
# Settings from the developer's shell must not leak into live test processes.
_SETTING_NAMES = {env for env, _, _ in documented_settings()} | {f"{env}_FILE" for env in secret_settings()}


@pytest.fixture(scope="session")
def stack():
    """Private MariaDB and Redis for the whole session, stopped at the end."""
    leftover = Stack(VAR, mysql_port=MYSQL_PORT, redis_port=REDIS_PORT)
    leftover.stop()  # a crashed earlier session may have left its servers running
    shutil.rmtree(VAR, ignore_errors=True)
    stack = Stack(VAR, mysql_port=MYSQL_PORT, redis_port=REDIS_PORT, max_connections=200)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def base_env(stack):
    """The environment of every live process: the test servers, no .env file."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
    env.update(
        SPILLWAY_ENV_FILE=os.devnull,
        MYSQL_URL=stack.mysql_url,
        REDIS_URL=stack.redis_url,
        CELERY_BROKER_URL=stack.broker_url,
        API_KEYS=f"{API_KEY}:write+read+admin,{OTHER_KEY}",  # the second: no scopes (writes and reads)
        FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        VAR_DIR=str(VAR),
        LOG_LEVEL="info",
        WEB_WORKERS="2",
        WORKER_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def settings(base_env):
    """Settings as the live processes see them (for helpers used in tests)."""
    keys = {"MYSQL_URL": "mysql_url", "REDIS_URL": "redis_url", "API_KEYS": "api_keys"}
    return load_settings({attr: base_env[env] for env, attr in keys.items()})


@pytest.fixture()
def db(settings, stack):
    """An autocommit MySQL connection to the test database (new per test: servers restart)."""
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 30))
    yield con
    con.close()


@pytest.fixture(scope="session")
def rds(settings):
    """A Redis client for the test Redis."""
    client = redis_lib.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture()
def fresh(stack, db, rds):
    """Empty tables and an empty Redis before the test."""
    with db.cursor() as cur:
        for table in TABLES:
            cur.execute(f"TRUNCATE TABLE {table}")
    rds.flushall()
    yield


@pytest.fixture()
def servers_restored(stack):
    """Whatever a test does to MariaDB or Redis (stop, SIGSTOP, kill), they run again afterwards."""
    import signal

    yield stack
    for server in (stack.redis, stack.mariadb):
        if server.pid:
            server.signal(signal.SIGCONT)
        else:
            server.start()


@pytest.fixture()
def processes():
    """Every live process a test starts is stopped when it ends."""
    started = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture()
def start_web(base_env, processes):
    """Factory: start gunicorn with extra environment settings; stopped after the test."""

    def start(wait=True, **overrides):
        """overrides: settings for this server; None unsets one (so .env, if any, decides)."""
        env = {**base_env, "PORT": str(free_port()), **{k: str(v) for k, v in overrides.items() if v is not None}}
        env = {k: v for k, v in env.items() if overrides.get(k, "") is not None}
        server = WebServer(env, VAR / "log", wait=wait)
        processes.append(server)
        return server

    return start


@pytest.fixture(scope="session")
def shared_web(base_env):
    """One gunicorn with default settings, shared by tests that need nothing special."""
    env = {**base_env, "PORT": str(free_port()), "NEGATIVE_CACHE_TTL": "1"}
    server = WebServer(env, VAR / "log")
    yield server
    server.stop()


@pytest.fixture()
def web(shared_web, fresh):
    """The shared gunicorn, with empty tables and Redis."""
    return shared_web


@pytest.fixture()
def start_worker(base_env, processes):
    """Factory: start a Celery worker with extra environment settings."""

    def start(concurrency=2, name="w1", **overrides):
        env = {**base_env, **{k: str(v) for k, v in overrides.items()}}
        worker = CeleryWorker(env, VAR / "log", concurrency=concurrency, name=name)
        processes.append(worker)
        return worker

    return start


@pytest.fixture()
def start_flower(base_env, processes):
    """Factory: start Flower on a free port."""

    def start(**overrides):
        flower = Flower({**base_env, "FLOWER_PORT": str(free_port()), **overrides}, VAR / "log")
        processes.append(flower)
        return flower

    return start


@pytest.fixture()
def app(base_env, monkeypatch):
    """The Flask app in this process, configured like the live ones."""
    from webapp import create_app

    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    return create_app()


@pytest.fixture()
def runner(app):
    """Flask's CLI runner, for `flask --app webapp <command>`."""
    return app.test_cli_runner()


@pytest.fixture()
def scratch_redis():
    """Factory: a second redis-server with the given settings (an unsafe or failing server); stopped after."""
    started = []

    def start(*args):
        port = free_port()
        data = VAR / f"scratch-redis-{port}"
        data.mkdir(parents=True)
        argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", str(data), "--save", "", *args]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append((proc, data))
        client = redis_lib.Redis(port=port)
        wait_for(lambda: _answers_ping(client), timeout=10, interval=0.05, message=f"redis-server on {port}")
        client.close()
        return f"redis://127.0.0.1:{port}/0", data

    yield start
    for proc, data in started:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # a server that cannot write its files refuses to shut down
            proc.kill()
            proc.wait(5)
        shutil.rmtree(data, ignore_errors=True)


def _answers_ping(client):
    """True once the server answers, an error reply included (a replica without its primary: MASTERDOWN)."""
    try:
        client.ping()
    except redis_lib.ResponseError:
        return True
    except redis_lib.RedisError:  # not listening yet, or still loading
        return False
    return True


@pytest.fixture()
def mysql_trigger(db):
    """Factory: mysql_trigger(name, "BEFORE INSERT ON items ...") makes a real trigger and returns a function
    that drops it (to remove the cause mid-test); every trigger made is dropped after the test."""
    made = []

    def drop(name):
        with db.cursor() as cur:
            cur.execute(f"DROP TRIGGER IF EXISTS {name}")

    def create(name, definition):
        with db.cursor() as cur:
            cur.execute(f"CREATE TRIGGER {name} {definition}")
        made.append(name)
        return lambda: drop(name)

    yield create
    for name in made:
        drop(name)


@pytest.fixture()
def svc(settings, fresh):
    """In-process storage on the test servers, as a drain worker has it."""
    services = Services(settings, role="worker")
    yield services
    services.close()


# The first migration is schema.sql as it was before migrations, word for word but for its header comment.
OLD_SCHEMA = MIGRATIONS / "0001.baseline.sql"
OLD_DATABASE = "spillway_upgrade"


@pytest.fixture()
def old_database(stack, settings):
    """A database created by schema.sql as it was before migrations, with rows in every table:
    (settings for it, an autocommit connection to it). Used by test_migrations.py and test_install.py."""
    password = _secret_file(stack.var_dir, "mariadb.password")
    stack.mariadb.sql(f"DROP DATABASE IF EXISTS {OLD_DATABASE}")
    stack.mariadb.ensure_database(OLD_DATABASE, DB_USER, password)
    url = stack.mariadb.url(OLD_DATABASE, DB_USER, password)
    con = pymysql.connect(**connect_kwargs(url, settings, 30))
    with con.cursor() as cur:
        sql = "\n".join(line for line in OLD_SCHEMA.read_text().splitlines() if not line.lstrip().startswith("--"))
        for statement in sql.split(";"):  # as the old apply_schema() ran it
            if statement.strip():
                cur.execute(statement)
        cur.executemany("INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, NOW(6))",
                        [("live", json.dumps({"v": 1}), 10, 0), ("gone", None, 20, 1)])
        cur.execute("INSERT INTO events (seq, name, level, occurred_at, received_at, data) "
                    "VALUES (30, 'e', 'info', NOW(6), NOW(6), '{}')")
        cur.execute("INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at, accepted_at) "
                    "VALUES (40, 'w_x', 'items', '{}', 'r', NOW(6), NOW(6))")
    yield dataclasses.replace(settings, mysql_url=url), con
    con.close()
    stack.mariadb.sql(f"DROP DATABASE IF EXISTS {OLD_DATABASE}")
