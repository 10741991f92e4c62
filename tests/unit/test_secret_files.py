"""Secrets are never readable by others, not even for a moment (hardening II, item 10).

write_text() then chmod() leaves the secret in a file the umask made 0644 until
the chmod. An audit hook looks at the directory at every file event of the write
(open, chmod, rename): at no such moment may a file with contents be readable by
group or others.
"""
import os
import stat
import sys

import pytest

from deploy import bootstrap, run, servers

_watch = {"dir": None, "seen": []}


def _hook(event, args):
    folder = _watch["dir"]
    if folder is None or event not in ("open", "os.chmod", "os.rename", "os.replace"):
        return
    for where, _dirs, files in os.walk(folder):
        for name in files:
            st = os.stat(os.path.join(where, name))
            if st.st_size and st.st_mode & 0o077:
                _watch["seen"].append((event, name, oct(stat.S_IMODE(st.st_mode))))


sys.addaudithook(_hook)  # hooks cannot be removed; this one acts only while _watch["dir"] is set


@pytest.fixture
def watched(tmp_path):
    old = os.umask(0o022)
    _watch.update(dir=tmp_path, seen=[])
    try:
        yield tmp_path
    finally:
        _watch["dir"] = None
        os.umask(old)


def _private(path):
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_private_is_never_wider(watched):
    path = watched / "secret.conf"
    path.write_text("old\n")  # an older copy with the umask's 0644
    path.chmod(0o644)
    _watch["seen"].clear()
    servers.write_private(path, "requirepass s3cret\n")
    assert path.read_text() == "requirepass s3cret\n" and _private(path)
    assert [s for s in _watch["seen"] if s[1] != "secret.conf"] == []  # the new copy was never wide
    assert os.listdir(watched) == ["secret.conf"]  # and no temporary file is left behind


def test_env_file_and_passwords_are_born_private(watched, monkeypatch):
    for name in ("API_KEYS", "FLOWER_BASIC_AUTH", "PRIVATE_REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    env = watched / ".env"
    assert bootstrap.ensure_env_file(env)
    password = bootstrap._secret_file(watched, "mysql.password")
    ctl = run.write_supervisor_files(watched, "pw", "")
    assert password and _private(env) and _private(watched / "mysql.password") and _private(ctl)
    wide = [s for s in _watch["seen"] if s[1] in (".env", "mysql.password", "supervisorctl.conf")]
    assert wide == [], f"a secret was readable by others while being written: {wide}"
