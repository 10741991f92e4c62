"""Imports run one way: server -> api -> http -> storage -> kernel, tasks -> storage -> kernel.

A Celery worker never loads Flask, gevent or the HTTP vocabulary, and
`lint-imports` (run by `make test`) refuses an import against the grain; the
last test shows it would, for each ring.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.config import ROOT

BIN = Path(sys.executable).parent


def test_the_celery_app_and_the_drain_load_no_flask_werkzeug_gevent_or_http():
    probe = ("import sys, tasks, tasks.drain, tasks.keeper, tasks.retention, tasks.redrive; "
             "print(sorted(m for m in ('flask', 'werkzeug', 'gevent', 'webapp.http') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "SPILLWAY_ENV_FILE": "/dev/null",
                              "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(tree)})


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the code and the contracts, to add imports against the grain to."""
    root = tmp_path_factory.mktemp("tree")
    for name in ("webapp", "tasks"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def test_the_import_contracts_hold(tree):
    kept = _lint(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr


@pytest.mark.parametrize("module, probe", [
    ("webapp/storage/cache.py", "from webapp.http import errors"),  # storage raising HTTP errors
    ("webapp/storage/queue.py", "from webapp.http.render import receipt_body"),
    ("webapp/storage/stream.py", "import flask"),
    ("webapp/http/writes.py", "import flask"),  # the HTTP vocabulary is Flask-free
    ("webapp/http/writes.py", "from webapp.api import responses"),
    ("webapp/server/writes.py", "from webapp.api import request"),  # the layers below Flask use http, not views
    ("tasks/drain.py", "from webapp.http import errors"),  # the drain knows no HTTP
    ("webapp/clock.py", "from webapp.storage import keys"),  # the kernel is below storage
])
def test_an_import_against_the_grain_breaks_a_contract(tree, module, probe):
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{probe}  # noqa\n")
    try:
        broken = _lint(tree)
    finally:
        path.write_text(original)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout, broken.stdout
