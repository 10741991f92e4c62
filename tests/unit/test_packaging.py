"""The package `pip install .` builds agrees with what is tested: the same dependencies, the lock, its data files.

pyproject.toml's dependencies are ranges, requirements.txt pins them (`make`
builds .venv from it) and requirements.lock pins them with everything they pull
in, with hashes. The installed service itself is tested in tests/e2e/test_install.py.
"""
import fnmatch
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from webapp.config import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(path):
    """{name: version} of the `name==version` lines of a requirements file (continuations and comments skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(3)
    return pins


def test_every_dependency_is_pinned_in_requirements_txt_inside_its_range():
    ranges = {canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}
    pins = _pins(ROOT / "requirements.txt")
    assert set(ranges) == set(pins), "pyproject.toml's dependencies and requirements.txt name different packages"
    for name, requirement in ranges.items():
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"


def test_the_lock_holds_every_pin_at_its_version_each_with_hashes():
    lock = (ROOT / "requirements.lock").read_text()
    locked = _pins(ROOT / "requirements.lock")
    for name, version in _pins(ROOT / "requirements.txt").items():
        assert locked.get(name) == version, f"requirements.lock has {name} {locked.get(name)}, not {version}"
    entries = re.split(r"\n(?=[A-Za-z])", lock.split("\n", 2)[2])
    assert len(entries) == len(locked) and all("--hash=sha256:" in e for e in entries)


def test_every_data_file_of_the_code_is_shipped_as_package_data():
    """A file the code reads at run time (a Lua script, a migration) must be in the wheel."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]
    for top in ("webapp", "tasks", "deploy"):
        for path in (ROOT / top).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            if top == "deploy":  # make run's and the operators' files, not read by the installed code
                continue
            relative = path.relative_to(ROOT)
            shipped = any(fnmatch.fnmatch(str(relative.relative_to(package.replace(".", "/"))), pattern)
                          for package, patterns in globs.items() if relative.is_relative_to(package.replace(".", "/"))
                          for pattern in patterns)
            assert shipped, f"{relative} is not in pyproject.toml's package-data"


def test_the_console_script_is_the_spillway_command():
    from deploy.cli import cli

    assert PYPROJECT["project"]["scripts"] == {"spillway": "deploy.cli:main"}
    assert {"web", "worker", "flower", "init-db", "migrate", "status", "dead-letters"} <= set(cli.commands)


def test_the_tools_reach_make_runs_private_servers_when_no_url_is_set(tmp_path, monkeypatch):
    """`spillway dead-letters ...` in a checkout after `make run`, with no MYSQL_URL / REDIS_URL exported."""
    from deploy.cli import private_servers
    from webapp.config import load_settings

    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    unset = {"var_dir": str(tmp_path), "mysql_url": "", "redis_url": "", "redis_sentinels": "",
             "private_redis_password": "pw", "private_mysql_port": 3307, "private_redis_port": 6380}
    assert private_servers(load_settings(unset)) == {}  # make run never ran here: nothing to find
    assert list(tmp_path.iterdir()) == []  # ... and no password file was made looking
    (tmp_path / "mariadb.password").write_text("dbpw")
    assert private_servers(load_settings(unset)) == {"mysql_url": "mysql://spillway:dbpw@127.0.0.1:3307/spillway",
                                                     "redis_url": "redis://:pw@127.0.0.1:6380/0"}
    given = load_settings({**unset, "mysql_url": "mysql://u:p@db.example/app"})
    assert private_servers(given) == {"redis_url": "redis://:pw@127.0.0.1:6380/0"}  # a URL given wins
