"""Settings: one reader of the environment and .env, typed values, clear errors, documented defaults."""
import re

import pytest

from webapp.config import (
    ROOT,
    ConfigError,
    documented_settings,
    load_settings,
    parse_mysql_url,
    parse_rate,
    secret_settings,
)


def test_environment_beats_env_file_and_types_are_converted(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9001\nDB_POOL_TIMEOUT=200ms\nREADS_REQUIRE_KEY=yes\n")
    monkeypatch.setenv("SPILLWAY_ENV_FILE", str(env_file))
    monkeypatch.setenv("PORT", "9002")
    monkeypatch.delenv("DB_POOL_TIMEOUT", raising=False)
    monkeypatch.delenv("READS_REQUIRE_KEY", raising=False)
    s = load_settings()
    assert s.port == 9002 and s.db_pool_timeout == 0.2 and s.reads_require_key is True


@pytest.mark.parametrize("name, value", [
    ("PORT", "eighty"), ("PORT", "-1"), ("READS_REQUIRE_KEY", "maybe"), ("CACHE_TTL", "1h"),
    ("MYSQL_TLS", "sometimes"), ("WRITE_RATE_LIMIT", "fast"), ("WRITE_BATCH_MAX", "0"),
    ("LOG_LEVEL", "verbose"), ("LOG_LEVEL", "warn"), ("LOG_LEVEL", ""),
])
def test_malformed_settings_raise_config_error_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_log_level_is_one_of_the_levels_every_process_knows_in_any_case(monkeypatch):
    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    monkeypatch.setenv("LOG_LEVEL", "Warning")
    assert load_settings().log_level == "warning"
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == "LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'"


def test_rates_and_urls_parse():
    assert parse_rate("100/second") == (100, 1)
    assert parse_rate("6000/minute") == (6000, 60)
    assert parse_rate("10/5s") == (10, 5)
    t = parse_mysql_url("mysql://u:p%40ss@db.example:3310/app")
    assert (t.host, t.port, t.user, t.password, t.database, t.is_local) == ("db.example", 3310, "u", "p@ss", "app", False)
    assert parse_mysql_url("mysql://u:p@127.0.0.1/app").is_local


def test_the_configuration_doc_lists_every_setting_with_its_default():
    readme = (ROOT / "docs" / "configuration.md").read_text()
    for env, default, _ in documented_settings():
        row = re.search(rf"^\| `{env}` \| ([^|]*) \|", readme, re.M)
        assert row, f"{env} is missing from docs/configuration.md"
        if env not in ("VAR_DIR",):
            shown = row.group(1).strip().strip("`")
            if isinstance(default, bool):
                expected = "true" if default else "false"
            elif isinstance(default, float):
                expected = f"{default:g}"
            else:
                expected = str(default) or "(empty)"
            assert shown == expected, env


def test_api_keys_carry_scopes_and_a_key_without_scopes_writes_and_reads():
    from webapp.config import parse_api_keys

    assert parse_api_keys("k1, k2:read , k3:write+read+admin") == [
        (b"k1", frozenset({"write", "read"})), (b"k2", frozenset({"read"})),
        (b"k3", frozenset({"write", "read", "admin"}))]
    with pytest.raises(ConfigError, match="unknown scope 'root'"):
        parse_api_keys("k1:root")


def test_a_malformed_url_is_refused_without_showing_its_password():
    with pytest.raises(ConfigError) as err:
        parse_mysql_url("mysql://app:s3cret-pw@db.example:3306")  # no database: malformed
    assert "s3cret-pw" not in str(err.value) and "***" in str(err.value)


def test_a_secret_setting_is_read_from_the_file_its_FILE_variable_names(tmp_path, monkeypatch):
    secret = tmp_path / "api_keys"
    secret.write_text("k-from-file:write+read\n")  # as a Docker secret or systemd credential, newline included
    url = tmp_path / "mysql_url"
    url.write_text("mysql://u:p@db.example/app")
    env_file = tmp_path / ".env"
    env_file.write_text(f"API_KEYS=k-from-env-file\nMYSQL_URL_FILE={url}\n")
    monkeypatch.setenv("SPILLWAY_ENV_FILE", str(env_file))
    monkeypatch.setenv("API_KEYS_FILE", str(secret))
    for name in ("API_KEYS", "MYSQL_URL", "MYSQL_URL_FILE"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.api_keys == "k-from-file:write+read"  # the environment's _FILE wins over .env's value
    assert s.mysql_url == "mysql://u:p@db.example/app"  # a _FILE in .env works too
    monkeypatch.setenv("MYSQL_URL", "mysql://env:p@db.example/app")
    assert load_settings().mysql_url == "mysql://env:p@db.example/app"  # the environment's value wins over .env


def test_a_secret_given_twice_or_in_a_missing_file_stops_start_up_without_showing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    secret = tmp_path / "flower"
    secret.write_text("admin:s3cret")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:other")
    monkeypatch.setenv("FLOWER_BASIC_AUTH_FILE", str(secret))
    with pytest.raises(ConfigError, match="both FLOWER_BASIC_AUTH and FLOWER_BASIC_AUTH_FILE are set"):
        load_settings()
    monkeypatch.delenv("FLOWER_BASIC_AUTH")
    monkeypatch.setenv("FLOWER_BASIC_AUTH_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"FLOWER_BASIC_AUTH_FILE names .*missing.*cannot be read") as err:
        load_settings()
    assert "s3cret" not in str(err.value)


def test_only_secrets_take_a_FILE_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    port = tmp_path / "port"
    port.write_text("9009")
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("PORT_FILE", str(port))
    assert load_settings().port == 8000


def test_the_configuration_doc_names_every_FILE_variable():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert set(secret_settings()) >= {"API_KEYS", "MYSQL_URL", "REDIS_URL", "FLOWER_BASIC_AUTH"}
    for env in secret_settings():
        assert f"`{env}_FILE`" in doc, f"{env}_FILE is missing from docs/configuration.md"
