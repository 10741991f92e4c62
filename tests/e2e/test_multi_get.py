"""POST /api/v1/items:get: up to 100 items in one request, read as a single GET reads them."""
import json
from urllib.parse import quote

import pytest
import requests

from tests.e2e.helpers import (
    API_KEY,
    HEADERS,
    assert_error,
    get,
    item_url,
    post_items,
    put_row,
    status_value,
)


def multi_get(web, keys=None, body=None, headers=None):
    """POST /api/v1/items:get with {"keys": keys} (or a raw body), no key unless headers give one."""
    data = body if body is not None else json.dumps({"keys": keys})
    return requests.post(web.url + "/api/v1/items:get", data=data, timeout=30,
                         headers={"Content-Type": "application/json", **(headers or {})})


def test_items_from_the_cache_mysql_and_pending_writes_in_the_order_asked_and_the_rest_missing(web, db, rds):
    put_row(db, "mysql", {"from": "mysql"}, version=5)
    put_row(db, "cached", {"from": "cache"}, version=6)
    put_row(db, "stale", {"from": "old row"}, version=1)
    put_row(db, "tomb", None, version=3, deleted=True)
    put_row(db, "deleted-later", {"n": 1}, version=2)
    assert get(item_url(web.url, "cached")).status_code == 200  # now cached
    assert post_items(web, [("pending", {"from": "queue"}), ("stale", {"from": "new write"})]).status_code == 202
    assert requests.delete(item_url(web.url, "deleted-later"), headers=HEADERS, timeout=10).status_code == 202
    asked = ["never", "stale", "mysql", "tomb", "cached", "pending", "deleted-later", "mysql"]
    before = status_value(db, "Com_select")
    r = multi_get(web, asked)
    assert status_value(db, "Com_select") - before == 1  # one query for the misses: never, mysql, tomb
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["key"] for i in body["items"]] == ["stale", "mysql", "cached", "pending"]  # a key twice: once
    assert [i["data"]["from"] for i in body["items"]] == ["new write", "mysql", "cache", "queue"]
    assert body["missing"] == ["never", "tomb", "deleted-later"]
    # Each entry is what a single GET answers.
    for item in body["items"]:
        assert get(item_url(web.url, item["key"])).json() == item
    # The misses are cached as a single GET caches them: rows for CACHE_TTL, 404s briefly.
    assert rds.pttl("spillway:item:mysql") > 3000_000 and 0 < rds.pttl("spillway:item:never") <= 1000
    before = status_value(db, "Com_select")
    assert multi_get(web, asked).json() == body
    assert status_value(db, "Com_select") - before <= 1  # the 404s may have expired (NEGATIVE_CACHE_TTL=1)


def test_100_keys_are_answered_101_are_422(web, db):
    keys = [f"k{i:03d}" for i in range(101)]
    for key in keys[:50]:
        put_row(db, key, {"k": key})
    body = multi_get(web, keys[:100]).json()
    assert [i["key"] for i in body["items"]] == keys[:50] and body["missing"] == keys[50:100]
    err = assert_error(multi_get(web, keys), 422, "validation_error")
    assert [d["path"] for d in err["details"]] == ["keys"] and "100" in err["details"][0]["message"]


@pytest.mark.parametrize("key", ["", "x" * 256, "a\x00b", "tab\there", "a\u0085b", "\x7f"])
def test_keys_are_validated_as_a_single_get_validates_them(shared_web, key):
    single = get(f"{shared_web.url}/api/v1/items/{quote(key, safe='')}")
    if key:  # an empty key has no path of its own
        assert_error(single, 422, "validation_error")
    err = assert_error(multi_get(shared_web, ["fine", key]), 422, "validation_error")
    assert [d["path"] for d in err["details"]] == ["keys[1]"]


@pytest.mark.parametrize("body, status, code", [
    ("", 400, "invalid_json"), ("{", 400, "invalid_json"), ("[]", 422, "validation_error"),
    ('{"keys": []}', 422, "validation_error"), ('{"keys": "a"}', 422, "validation_error"),
    ('{"keys": [1]}', 422, "validation_error"), ('{"keys": ["a"], "more": 1}', 422, "validation_error"),
])
def test_malformed_bodies_are_400_or_422(shared_web, body, status, code):
    assert_error(multi_get(shared_web, body=body), status, code)


def test_it_is_a_read_open_unless_reads_require_a_key_and_only_post(fresh, start_web):
    web = start_web(READS_REQUIRE_KEY="true")
    assert_error(multi_get(web, ["a"]), 401, "unauthorized")
    r = multi_get(web, ["a"], headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json() == {"items": [], "missing": ["a"]}
    assert_error(get(web.url + "/api/v1/items:get"), 405, "method_not_allowed")
    assert_error(multi_get(web, body="keys=a", headers={"Authorization": f"Bearer {API_KEY}",
                                                         "Content-Type": "text/plain"}), 415, "unsupported_media_type")


def test_with_mysql_stopped_cached_keys_are_served_and_a_miss_is_503(fresh, start_web, db, servers_restored):
    web = start_web()
    put_row(db, "cached", {"n": 1})
    assert multi_get(web, ["cached"]).status_code == 200
    servers_restored.mariadb.stop()
    assert multi_get(web, ["cached"]).json()["items"][0]["data"] == {"n": 1}
    assert_error(multi_get(web, ["cached", "uncached"]), 503, "database_unavailable")
