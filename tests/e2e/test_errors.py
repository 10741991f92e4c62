"""Every error has the one JSON shape: unknown routes, wrong methods, crashes."""
import logging

import pytest

from tests.e2e.helpers import assert_error, get
from webapp import create_app


@pytest.mark.parametrize("path", ["/", "/nothing", "/api/v2/items", "/api/v1/items/"])
def test_unknown_route_is_json_404(shared_web, path):
    assert_error(get(shared_web.url + path), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(shared_web):
    import requests

    r = requests.put(shared_web.url + "/healthz", timeout=10)
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_unexpected_exception_is_json_500_and_logged_with_traceback(app, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    with caplog.at_level(logging.ERROR):
        r = app.test_client().get("/boom")
    assert r.status_code == 500
    assert r.json == {"error": {"code": "internal_error", "message": "Something went wrong on our side; the error was logged."}}
    assert "secret internal detail" not in r.get_data(as_text=True)
    assert "RuntimeError: secret internal detail" in caplog.text and "Traceback" in caplog.text


def test_missing_required_setting_stops_start_up_with_one_clear_line(base_env, monkeypatch):
    from webapp.config import ConfigError

    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("API_KEYS")
    with pytest.raises(ConfigError, match="missing setting API_KEYS"):
        create_app()


def test_malformed_setting_names_the_variable(base_env, monkeypatch):
    from webapp.config import ConfigError

    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DB_POOL_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="DB_POOL_TIMEOUT must be a number of seconds"):
        create_app()
