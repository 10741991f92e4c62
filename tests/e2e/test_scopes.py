"""Key scopes: write, read, admin; a key without scopes writes and reads; keys reload on HUP."""
import signal

import pytest
import requests

from deploy.processes import wait_for
from tests.e2e.helpers import API_KEY, OTHER_KEY, assert_error, get


def post(web, key, **kwargs):
    return requests.post(web.url + "/api/v1/items", json={"items": [{"key": "k", "data": {}}]}, timeout=10,
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


@pytest.fixture()
def scoped_web(fresh, start_web):
    return start_web(API_KEYS="reader:read,writer:write,boss:admin,old", READS_REQUIRE_KEY="true")


def test_each_scope_allows_only_its_own_calls(scoped_web):
    web = scoped_web
    assert post(web, "writer").status_code == 202
    assert post(web, "old").status_code == 202  # no scopes: writes, as before scopes existed
    assert_error(post(web, "reader"), 403, "forbidden")
    assert_error(post(web, "boss"), 403, "forbidden")
    url = web.url + "/api/v1/items/k"
    assert get(url, headers={"Authorization": "Bearer reader"}).status_code == 200
    assert get(url, headers={"Authorization": "Bearer old"}).status_code == 200
    assert_error(get(url, headers={"Authorization": "Bearer writer"}), 403, "forbidden")
    assert_error(get(url), 401, "unauthorized")
    dead = web.url + "/api/v1/dead-letters"
    assert get(dead, headers={"Authorization": "Bearer boss"}).status_code == 200
    assert_error(get(dead, headers={"Authorization": "Bearer writer"}), 403, "forbidden")


def test_the_openapi_document_names_the_scope_of_each_call(shared_web):
    doc = get(shared_web.url + "/openapi.json").json()
    assert doc["paths"]["/api/v1/items"]["post"]["security"] == [{"bearer": ["write"]}]
    assert doc["paths"]["/api/v1/dead-letters"]["get"]["security"] == [{"bearer": ["admin"]}]


def test_a_reload_picks_up_changed_keys(fresh, start_web, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"API_KEYS={API_KEY}\n")
    web = start_web(SPILLWAY_ENV_FILE=str(env_file), API_KEYS=None)  # the keys come from the file
    assert post(web, API_KEY).status_code == 202
    env_file.write_text(f"API_KEYS={OTHER_KEY}\n")
    web.send_signal(signal.SIGHUP)  # what `supervisorctl signal HUP web` does

    def swapped():
        return post(web, OTHER_KEY).status_code == 202 and post(web, API_KEY).status_code == 401

    wait_for(swapped, timeout=30, interval=0.5, message="the new keys after the reload")
