"""ETag and If-None-Match on GET /api/v1/items/<key>: 304 from MySQL, from the cache and for pending writes."""
import requests

from tests.e2e.helpers import API_KEY, HEADERS, assert_error, get, item_url, post_items, put_row

MATCHING = ['"v7"', 'W/"v7"', '"v1", "v7"', '*', '"a,b" ,, W/"v7"']
NOT_MATCHING = ['"v8"', '"v1", W/"v70"', 'v7', '"V7"', '"v7"x']


def test_a_strong_etag_from_the_version_and_a_matching_if_none_match_is_304_from_mysql_and_the_cache(web, db, rds):
    put_row(db, "m", {"v": 1}, version=7)
    with requests.Session() as s:  # one connection: a 304 that carried a body would garble the next answer
        missed = s.get(item_url(web.url, "m"), headers={"If-None-Match": '"v7"'}, timeout=10)
        assert rds.exists("spillway:item:m")  # that was a miss, answered from MySQL, now cached
        assert missed.status_code == 304 and missed.content == b"" and missed.headers["ETag"] == '"v7"'
        assert "Content-Type" not in missed.headers
        for header in MATCHING:  # cache hits, answered below Flask
            r = s.get(item_url(web.url, "m"), headers={"If-None-Match": header}, timeout=10)
            assert (r.status_code, r.content, r.headers["ETag"]) == (304, b"", '"v7"'), header
        for header in NOT_MATCHING:
            r = s.get(item_url(web.url, "m"), headers={"If-None-Match": header}, timeout=10)
            assert r.status_code == 200 and r.json()["data"] == {"v": 1} and r.headers["ETag"] == '"v7"', header
    rds.delete("spillway:item:m")
    loaded = get(item_url(web.url, "m"))  # a miss again: the same ETag from MySQL
    assert loaded.status_code == 200 and loaded.headers["ETag"] == '"v7"' and loaded.json()["version"] == 7


def test_a_pending_write_has_the_etag_of_its_version_and_the_next_write_changes_it(web):
    assert post_items(web, [("p", {"n": 1})]).status_code == 202
    first = get(item_url(web.url, "p"))
    tag = first.headers["ETag"]
    assert tag == f'"v{first.json()["version"]}"'
    assert get(item_url(web.url, "p"), headers={"If-None-Match": tag}).status_code == 304
    assert post_items(web, [("p", {"n": 2})]).status_code == 202
    changed = get(item_url(web.url, "p"), headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["data"] == {"n": 2} and changed.headers["ETag"] != tag


def test_a_missing_or_deleted_item_is_404_whatever_if_none_match_says(web, db):
    put_row(db, "gone", None, version=3, deleted=True)
    for key in ("gone", "never"):
        for _ in range(2):  # from MySQL, then the cached 404
            assert_error(get(item_url(web.url, key), headers={"If-None-Match": "*"}), 404, "not_found")
    assert post_items(web, [("p", {"n": 1})]).status_code == 202
    deleted = requests.delete(item_url(web.url, "p"), headers=HEADERS, timeout=10)
    assert deleted.status_code == 202
    assert_error(get(item_url(web.url, "p"), headers={"If-None-Match": "*"}), 404, "not_found")


def test_the_flask_view_answers_304_for_cached_and_pending_items_too(fresh, start_web):
    web = start_web(READS_REQUIRE_KEY="true")  # no cache-hit layer below Flask: the view reads the cache
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert post_items(web, [("p", {"n": 1})]).status_code == 202
    first = get(item_url(web.url, "p"), headers=auth)
    assert first.status_code == 200 and first.headers["ETag"] == f'"v{first.json()["version"]}"'
    again = get(item_url(web.url, "p"), headers={**auth, "If-None-Match": f'W/{first.headers["ETag"]}'})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", first.headers["ETag"])
