"""What the README and supervisord.conf say matches the code: the 202's fields, the environment make run passes."""
import json
import os
import re

from webapp.config import ROOT, load_settings
from webapp.http.render import receipt_body
from webapp.storage.queue import Receipt


def test_the_readme_shows_every_field_of_the_202():
    readme = (ROOT / "README.md").read_text()
    shown = json.loads(re.search(r"^# 202 (\{.*\})$", readme, re.M)[1])
    assert set(shown) == set(receipt_body(Receipt("w_1", 1)))


def test_supervisord_conf_names_every_variable_make_run_passes_and_not_the_whole_env_file(tmp_path, monkeypatch):
    from deploy.run import _child_environment

    env_file = tmp_path / ".env"
    env_file.write_text("API_KEYS=k1\nFLOWER_BASIC_AUTH=u:p\nPORT=8123\n")
    monkeypatch.setenv("SPILLWAY_ENV_FILE", str(env_file))
    for name in ("FLOWER_BASIC_AUTH", "API_KEYS", "PORT"):
        monkeypatch.delenv(name, raising=False)
    urls = {"MYSQL_URL": "mysql://u:p@h/db", "REDIS_URL": "redis://h/0", "CELERY_BROKER_URL": "redis://h:2/0"}
    env = _child_environment(load_settings(), urls, tmp_path)
    added = set(env) - set(os.environ) | {"PATH"}
    assert "API_KEYS" not in env  # .env is read by the programs themselves
    header = (ROOT / "supervisord.conf").read_text().split("[supervisord]")[0]
    named = set(re.findall(r"\b([A-Z][A-Z_]{2,})\b", header))
    missing = {name for name in added if name not in named and not name.startswith("FLOWER_")}
    assert not missing, f"supervisord.conf's header does not name {sorted(missing)}"
    assert "FLOWER_*" in header and "everything in" not in header.replace("\n;", " ")
