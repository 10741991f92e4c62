"""`pip install .` gives a working `spillway` command, away from the checkout.

A fresh virtualenv gets the package built from a copy of the checkout, and then,
from a directory of their own (so nothing is imported from the checkout): the
command lists its commands; `spillway migrate` upgrades an old-schema database
with its data intact; `spillway web`, `worker` and `flower` run with secrets
given as *_FILE and carry a write through to MySQL; `status` and `dead-letters` read
the same servers.

To stay near 30 s and off the network for dependencies, the virtualenv sees this
test run's own site-packages (the pinned dependencies) through a .pth file, and
the package is installed with --no-deps; pip still builds it in isolation, as
`pip install .` does (setuptools from PyPI, or pip's cache).
"""
import json
import shutil
import site
import subprocess
import sys

import pytest
import requests

from deploy.processes import ROOT, LiveProcess, free_port, wait_for
from tests.e2e.helpers import API_KEY, FAST, FLOWER_PASSWORD, FLOWER_USER, HEADERS, MIGRATION_IDS, VAR
from tests.e2e.helpers import assert_upgraded_with_its_data as upgraded

pytestmark = pytest.mark.install
COMMANDS = ("web", "worker", "flower", "init-db", "migrate", "status", "dead-letters")
NOT_SHIPPED = ("var", ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".mypy_cache",
               ".ruff_cache", ".schemathesis", ".env")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the virtualenv, a working directory outside the checkout) once `pip install .` has run there."""
    root = tmp_path_factory.mktemp("install")
    source, venv, cwd = root / "spillway", root / "venv", root / "cwd"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    deps = [p for p in sys.path if p.endswith("site-packages")] or site.getsitepackages()
    (venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "deps.pth"
     ).write_text("\n".join(deps) + "\n")
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--no-deps", "--ignore-installed", str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    cwd.mkdir()
    return venv, cwd


def spillway(installed, *args, env=None, timeout=120):
    """Run the installed `spillway` from the working directory; the CompletedProcess."""
    venv, cwd = installed
    return subprocess.run([str(venv / "bin" / "spillway"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else {"PATH": "/usr/bin:/bin",
                                                                             "SPILLWAY_ENV_FILE": "/dev/null"})


def secret_files(tmp_path, env, *names):
    """Move each setting `names` out of env into a file named by NAME_FILE (as a Docker secret is given)."""
    env = dict(env)
    for name in names:
        path = tmp_path / name.lower()
        path.write_text(env.pop(name) + "\n")
        path.chmod(0o600)
        env[f"{name}_FILE"] = str(path)
    return env


def test_pip_install_gives_a_spillway_command_that_lists_every_command(installed):
    venv, cwd = installed
    shown = spillway(installed, "--help")
    assert shown.returncode == 0, shown.stderr
    listed = {line.split()[0] for line in shown.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert set(COMMANDS) <= listed, shown.stdout
    letters = spillway(installed, "dead-letters", "--help")
    assert {"list", "show", "redrive", "purge"} <= set(letters.stdout.split()), letters.stdout
    # the code and its data files come from the virtualenv, not from the checkout
    probe = ("import webapp, deploy.cli, webapp.storage.migrate as m, webapp.storage.redis_client as r; "
             "print(webapp.__file__); print(len(list(m.MIGRATIONS.glob('*.sql'))), len(list(r.LUA_DIR.glob('*.lua'))))")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=cwd, capture_output=True, text=True,
                           timeout=60)
    path, counts = where.stdout.split("\n")[:2]
    assert path.startswith(str(venv)), where.stdout + where.stderr
    assert counts == f"{len(MIGRATION_IDS)} 7"
    refused = spillway(installed, "web")  # no settings: one line naming them, no traceback
    assert refused.returncode == 2 and "missing setting MYSQL_URL" in refused.stderr and "Traceback" not in refused.stderr


def test_spillway_migrate_upgrades_an_old_schema_database_with_its_data(installed, old_database, base_env, tmp_path):
    settings, con = old_database
    env = secret_files(tmp_path, {**base_env, "MYSQL_URL": settings.mysql_url}, "MYSQL_URL")
    dry = spillway(installed, "migrate", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"would apply {m}" for m in MIGRATION_IDS]
    applied = spillway(installed, "migrate", env=env)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [f"applied {m}" for m in MIGRATION_IDS]
    upgraded(con)
    again = spillway(installed, "migrate", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "The schema is up to date."


def test_installed_web_worker_flower_and_tools_take_their_secrets_from_files(installed, fresh, base_env, db, processes,
                                                                      tmp_path):
    """The installed programs find their gunicorn, Celery and Flower settings in the package, and read
    API_KEYS, MYSQL_URL and FLOWER_BASIC_AUTH from files: a write is accepted, drained into MySQL,
    Flower asks for its password, and `status` and `dead-letters` read the same servers."""
    venv, cwd = installed
    env = secret_files(tmp_path, {**base_env, "PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
                                  "WEB_WORKERS": "1", "WORKER_CONCURRENCY": "1", **{k: str(v) for k, v in FAST.items()}},
                       "API_KEYS", "MYSQL_URL", "FLOWER_BASIC_AUTH")
    for program in ("web", "worker", "flower"):
        processes.append(LiveProcess(f"installed-{program}", [str(venv / "bin" / "spillway"), program], env,
                                     VAR / "log", cwd=cwd))
    url, flower = f"http://127.0.0.1:{env['PORT']}", f"http://127.0.0.1:{env['FLOWER_PORT']}"

    def answers(address):
        assert all(p.alive() for p in processes), "\n".join(p.log()[-2000:] for p in processes)
        try:
            return requests.get(address, timeout=5).status_code
        except requests.RequestException:  # not listening yet, or slow on a loaded machine
            return None

    wait_for(lambda: answers(url + "/healthz") == 200, timeout=60, message="the installed web server")
    accepted = requests.post(url + "/api/v1/items", headers=HEADERS, timeout=10,
                             data=json.dumps({"items": [{"key": "installed", "data": {"ok": True}}]}))
    assert accepted.status_code == 202, accepted.text
    status_url = url + accepted.json()["status_url"]
    wait_for(lambda: requests.get(status_url, timeout=5).json()["status"] == "persisted", timeout=60,
             interval=0.2, message="the installed worker to drain the write")
    with db.cursor() as cur:
        cur.execute("SELECT data FROM items WHERE k = 'installed'")
        assert json.loads(cur.fetchone()[0]) == {"ok": True}
    wait_for(lambda: answers(flower + "/healthcheck") is not None, timeout=60, message="the installed Flower")
    assert requests.get(flower + "/api/workers", timeout=10).status_code == 401
    assert requests.get(flower + "/api/workers", timeout=10, auth=(FLOWER_USER, FLOWER_PASSWORD)).status_code == 200
    assert API_KEY not in json.dumps(dict(env))  # the key itself was in no process's environment
    status = spillway(installed, "status", "--window", "0.2", env=env)
    assert status.returncode == 0 and "drain workers 1 alive" in status.stdout, status.stdout + status.stderr
    letters = spillway(installed, "dead-letters", "list", env=env)  # runs in the Flask app's context
    assert letters.returncode == 0 and letters.stdout == "", letters.stderr
