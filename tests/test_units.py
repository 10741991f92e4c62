"""Unit tests of pure modules: settings, strict JSON, validation, time, cursors."""
import json
import os
import re
import subprocess
import sys

import pytest

from webapp import clock, jsonio
from webapp.config import ROOT, ConfigError, documented_settings, load_settings, parse_mysql_url, parse_rate
from webapp.errors import ValidationFailed
from webapp.validation import EventsIn, ItemsIn, decode_cursor, encode_cursor, parse


# --- settings ---------------------------------------------------------------------

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
])
def test_malformed_settings_raise_config_error_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv("SPILLWAY_ENV_FILE", "/dev/null")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_rates_and_urls_parse():
    assert parse_rate("100/second") == (100, 1)
    assert parse_rate("6000/minute") == (6000, 60)
    assert parse_rate("10/5s") == (10, 5)
    t = parse_mysql_url("mysql://u:p%40ss@db.example:3310/app")
    assert (t.host, t.port, t.user, t.password, t.database, t.is_local) == ("db.example", 3310, "u", "p@ss", "app", False)
    assert parse_mysql_url("mysql://u:p@127.0.0.1/app").is_local


def test_readme_configuration_table_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    for env, default, _ in documented_settings():
        row = re.search(rf"^\| `{env}` \| ([^|]*) \|", readme, re.M)
        assert row, f"{env} is missing from the README's configuration table"
        if env not in ("VAR_DIR",):
            shown = row.group(1).strip().strip("`")
            if isinstance(default, bool):
                expected = "true" if default else "false"
            elif isinstance(default, float):
                expected = f"{default:g}"
            else:
                expected = str(default) or "(empty)"
            assert shown == expected, env


# --- strict JSON -------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}', b'"\\ud800"',
    b'"\xff"', b"{", b"", b"[" * 5000 + b"]" * 5000, b'{"a":1} x',
])
def test_strict_json_rejects(raw):
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(raw)


def test_strict_json_keeps_big_integers_and_pairs_surrogates():
    assert jsonio.loads(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890
    assert jsonio.loads(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert jsonio.dumps({"a": "\u00e9\U0001f600", "b": [1, 2.5]}) == '{"a":"\u00e9\U0001f600","b":[1,2.5]}'


# --- validation ----------------------------------------------------------------------

def details(model, value):
    with pytest.raises(ValidationFailed) as err:
        parse(model, value)
    return {d["path"]: d["message"] for d in err.value.details}


def test_item_batch_validation_names_each_bad_record():
    bad = details(ItemsIn, {"items": [
        {"key": "ok", "data": {}},
        {"key": "", "data": {}},
        {"key": "x" * 256, "data": {}},
        {"key": "tab\there", "data": {}},
        {"key": 5, "data": {}},
        {"key": "k", "data": []},
        {"key": "k", "data": {}, "extra": 1},
        {"data": {}},
        {"key": "k", "data": {"s": "x" * 70000}},
        {"key": "k", "data": json.loads('{"a":' * 40 + "1" + "}" * 40)},
    ]})
    assert set(bad) == {"items[1].key", "items[2].key", "items[3].key", "items[4].key", "items[5].data",
                        "items[6].extra", "items[7].key", "items[8].data", "items[9].data"}
    assert "control characters" in bad["items[3].key"]
    assert "65536" in bad["items[8].data"] and "32 levels" in bad["items[9].data"]


def test_item_limits_count_code_points_and_utf8_bytes():
    # {"s":"..."} is 8 bytes plus 2 bytes per e-acute: exactly 65536 bytes at 32764 of them.
    ok = parse(ItemsIn, {"items": [{"key": "\U0001f600" * 255, "data": {"s": "\u00e9" * 32764}}]})
    assert ok.items[0].data == json.dumps({"s": "\u00e9" * 32764}, ensure_ascii=False, separators=(",", ":"))
    assert "items[0].data" in details(ItemsIn, {"items": [{"key": "k", "data": {"s": "\u00e9" * 32765}}]})


def test_batch_size_bounds():
    assert "items" in details(ItemsIn, {"items": []})
    assert "items" in details(ItemsIn, {"items": [{"key": "k", "data": {}}] * 1001})
    assert len(parse(ItemsIn, {"items": [{"key": "k", "data": {}}] * 1000}).items) == 1000


def test_event_validation():
    e = parse(EventsIn, {"events": [{"name": "login", "occurred_at": "2026-01-02T03:04:05.5+01:00"}]}).events[0]
    assert e.level == "info" and e.occurred_at == clock.parse_rfc3339("2026-01-02T02:04:05.5Z")
    bad = details(EventsIn, {"events": [
        {"name": "x" * 129}, {"name": "a", "level": "fatal"}, {"name": "a", "occurred_at": "yesterday"},
        {"name": "a", "event_id": ""}, {"name": "a", "data": {"s": "x" * 17000}}, {"name": "a", "when": 1},
    ]})
    assert set(bad) == {"events[0].name", "events[1].level", "events[2].occurred_at", "events[3].event_id",
                        "events[4].data", "events[5].when"}


# --- time and cursors ------------------------------------------------------------------

def test_rfc3339_round_trip():
    us = clock.parse_rfc3339("2026-11-23T06:35:00.123456Z")
    assert clock.to_rfc3339(us) == "2026-11-23T06:35:00.123456Z"
    assert clock.parse_rfc3339("2026-11-23T07:35:00.123456+01:00") == us
    for bad in ("2026-11-23", "2026-11-23T06:35:00", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValueError):
            clock.parse_rfc3339(bad)


def test_cursor_round_trip_and_rejection():
    assert decode_cursor(encode_cursor({"k": "a\u00e9"}), lambda p: "k" in p) == {"k": "a\u00e9"}
    for bad in ("", "!!!", encode_cursor([1]), "e30"):
        with pytest.raises(ValidationFailed):
            decode_cursor(bad, lambda p: isinstance(p, dict) and "k" in p)


def test_prefix_end_bounds_exactly_the_keys_with_the_prefix():
    from webapp.sql.items import prefix_end

    assert prefix_end("") is None
    assert prefix_end("ab") == "ac"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"
    p = "p\u00e9"
    inside = [p, p + "\x00", p + "\U0001f600", p + "\U0010ffff" * 3]
    outside = ["p", "p\u00ea", "p\u00e8\U0010ffff", "q"]
    assert all(p <= k < prefix_end(p) for k in inside)
    assert not any(p <= k < prefix_end(p) for k in outside)


def test_breaker_fails_fast_after_repeated_failures_then_lets_one_probe_through():
    import time

    from webapp.db import Breaker
    from webapp.errors import DatabaseUnavailable

    b = Breaker(cooldown=0.2, threshold=3)
    for _ in range(3):
        b.check()
        b.failed()
    with pytest.raises(DatabaseUnavailable):
        b.check()
    time.sleep(0.25)
    b.check()  # the probe
    with pytest.raises(DatabaseUnavailable):
        b.check()  # others still fail fast while it runs
    b.succeeded()
    b.check()


AUTOGROUP = "/proc/self/autogroup"


@pytest.mark.skipif(not os.path.exists(AUTOGROUP), reason="the kernel has no autogroup scheduling")
def test_a_drain_worker_leading_its_own_session_renices_its_scheduling_group_too():
    # Under autogroup, os.nice alone leaves a session leader a fair share of the CPUs against the web's session.
    probe = ("import os; from tasks.celery import lower_priority; lower_priority(7); "
             "print(os.nice(0), open('/proc/self/autogroup').read().split()[-1])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         start_new_session=True, env={**os.environ, "SPILLWAY_ENV_FILE": os.devnull}).stdout
    assert out.split() == ["7", "7"]
