"""Imports run one way: server -> api -> storage -> kernel, tasks -> storage -> kernel.

A Celery worker never loads Flask or gevent, and `lint-imports` (run by
`make test`) refuses an import against the grain; the last test shows it would.
"""
import shutil
import subprocess
import sys
from pathlib import Path

from webapp.config import ROOT

BIN = Path(sys.executable).parent


def test_the_celery_app_and_the_drain_load_no_flask_werkzeug_or_gevent():
    probe = ("import sys, tasks, tasks.drain, tasks.writer, tasks.keeper; "
             "print(sorted(m for m in ('flask', 'werkzeug', 'gevent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "SPILLWAY_ENV_FILE": "/dev/null",
                              "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.stdout.strip() == "[]", out.stderr


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(tree)})


def test_the_import_contracts_hold_and_would_catch_an_import_against_the_grain(tmp_path):
    for name in ("webapp", "tasks"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # A storage module that reaches up into the API breaks the rings.
    cache = tmp_path / "webapp" / "storage" / "cache.py"
    cache.write_text(cache.read_text() + "\nfrom webapp.api import responses  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout
