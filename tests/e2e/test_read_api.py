"""The read API against live gunicorn, MariaDB and Redis: items, lists, cache hygiene."""
import threading
import time
import unicodedata

import pytest

from tests.e2e.helpers import assert_error, get, item_url, parallel, put_row, status_value


def test_get_loads_from_mysql_and_answers_the_item_shape(web, db):
    put_row(db, "movie:1", {"title": "Heat", "year": 1995}, version=7)
    r = get(item_url(web.url, "movie:1"))
    assert r.status_code == 200
    body = r.json()
    assert body["key"] == "movie:1" and body["data"] == {"title": "Heat", "year": 1995}
    assert body["version"] == 7
    assert body["updated_at"].endswith("Z") and "T" in body["updated_at"]


def test_second_get_is_served_from_redis_with_a_jittered_ttl(web, db, rds):
    put_row(db, "k", {"v": 1})
    assert get(item_url(web.url, "k")).status_code == 200
    ttl = rds.pttl("spillway:item:k")
    assert 3600_000 * 0.9 - 1000 <= ttl <= 3600_000
    # MySQL changes behind the cache's back: the cached copy answers.
    put_row(db, "k", {"v": 2}, version=2)
    assert get(item_url(web.url, "k")).json()["data"] == {"v": 1}


def test_ttls_of_many_entries_differ(web, db, rds):
    for i in range(20):
        put_row(db, f"j{i}", {"i": i})
    parallel(lambda i: get(item_url(web.url, f"j{i}")), range(20))
    ttls = {rds.pttl(f"spillway:item:j{i}") // 1000 for i in range(20)}
    # 20 entries cached within a second: without jitter they would share one TTL.
    assert len(ttls) >= 10, ttls


def test_missing_key_is_404_and_the_miss_is_cached_briefly(web, db):
    assert_error(get(item_url(web.url, "later")), 404, "not_found")
    put_row(db, "later", {"ok": True})
    # The 404 is cached (NEGATIVE_CACHE_TTL=1 for this server) ...
    assert get(item_url(web.url, "later")).status_code == 404
    time.sleep(1.3)
    # ... briefly.
    assert get(item_url(web.url, "later")).json()["data"] == {"ok": True}


def test_deleted_row_is_404(web, db):
    put_row(db, "gone", None, version=3, deleted=True)
    assert_error(get(item_url(web.url, "gone")), 404, "not_found")


def test_concurrent_misses_of_one_key_run_one_query(web, db):
    put_row(db, "hot", {"n": 1})
    results = []
    with db.cursor() as cur:
        cur.execute("LOCK TABLES items WRITE")  # the loader's SELECT waits here
        before = status_value(db, "Com_select")
        threads = [threading.Thread(target=lambda: results.append(get(item_url(web.url, "hot"))))
                   for _ in range(40)]
        for t in threads:
            t.start()
        time.sleep(0.8)  # every request has arrived and found the key missing
        cur.execute("UNLOCK TABLES")
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 40
    # One SELECT for 40 requests across 2 processes (SHOW STATUS is not a SELECT).
    assert status_value(db, "Com_select") - before == 1


EXACT_KEYS = [
    "a", "a ", " a", "A", "a\u00a0",
    unicodedata.normalize("NFC", "caf\u00e9"), unicodedata.normalize("NFD", "caf\u00e9"),
    "\U0001f600 emoji", "\U00020000 cjk-ext-b", "quote'\"", "back\\slash", "a/b", "100%", "a_b", "?x=1#y",
    "'; DROP TABLE items; --", "x" * 255,
]


def test_keys_are_exact_bytes_and_text_round_trips(web, db):
    for i, key in enumerate(EXACT_KEYS):
        put_row(db, key, {"i": i, "text": key + " \u2603 \"q\" \\ \U0001f680"})
    for _ in range(2):  # from MySQL, then from the cache
        for i, key in enumerate(EXACT_KEYS):
            body = get(item_url(web.url, key)).json()
            assert body["key"] == key
            assert body["data"] == {"i": i, "text": key + " \u2603 \"q\" \\ \U0001f680"}
    assert_error(get(item_url(web.url, "a  ")), 404, "not_found")


def test_list_pages_through_persisted_items_in_utf8_byte_order(web, db):
    keys = [f"p{i:02d}" for i in range(25)] + ["p\u00e9", "p\U0001f600", "pZ"]
    for key in keys:
        put_row(db, key, {"k": key})
    put_row(db, "p99", None, deleted=True)
    seen, cursor = [], None
    while True:
        params = {"prefix": "p", "limit": 10, **({"cursor": cursor} if cursor else {})}
        r = get(f"{web.url}/api/v1/items", params=params)
        assert r.status_code == 200
        body = r.json()
        seen += [item["key"] for item in body["items"]]
        assert all(item["data"] == {"k": item["key"]} for item in body["items"])
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_list_prefix_is_literal_and_case_sensitive(web, db):
    for key in ["a%b", "a%c", "aXb", "a_b", "A%b", "a "]:
        put_row(db, key, {})
    def keys(prefix):
        return [i["key"] for i in get(f"{web.url}/api/v1/items", params={"prefix": prefix}).json()["items"]]
    assert keys("a%") == ["a%b", "a%c"]
    assert keys("a_") == ["a_b"]
    assert keys("A") == ["A%b"]
    assert keys("a ") == ["a "]


def test_list_default_limit_is_100(web, db):
    with db.cursor() as cur:
        cur.execute("INSERT INTO items (k, data, version, deleted, updated_at) SELECT CONCAT('s', LPAD(seq, 4, '0')), '{}', 1, 0, NOW(6) FROM seq_1_to_150")
    body = get(f"{web.url}/api/v1/items").json()
    assert len(body["items"]) == 100 and body["next"]
    assert len(get(f"{web.url}/api/v1/items", params={"cursor": body["next"]}).json()["items"]) == 50


@pytest.mark.parametrize("query, path", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("limit=1.5", "limit"),
    ("color=red", "color"), ("limit=5&limit=6", "limit"), ("cursor=not-a-cursor", "cursor"),
    ("cursor=eyJ4IjoxfQ", "cursor"), ("prefix=" + "x" * 256, "prefix"),
])
def test_bad_list_parameters_are_422_with_the_parameter_named(shared_web, query, path):
    err = assert_error(get(f"{shared_web.url}/api/v1/items?{query}"), 422, "validation_error")
    assert [d["path"] for d in err["details"]] == [path]


@pytest.mark.parametrize("raw_key, message", [
    ("%FF%FE", "UTF-8"), ("a%00b", "control"), ("a%C2%85b", "control"), ("x" * 256, "255"),
])
def test_bad_keys_in_the_path_are_422(shared_web, raw_key, message):
    err = assert_error(get(f"{shared_web.url}/api/v1/items/{raw_key}"), 422, "validation_error")
    assert message in err["details"][0]["message"]


def test_get_item_rejects_query_parameters(shared_web):
    assert_error(get(f"{shared_web.url}/api/v1/items/k?x=1"), 422, "validation_error")
