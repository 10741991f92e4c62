"""The Lua scripts against the real test Redis: cache fill, accept and ack semantics."""

from webapp.storage.keys import DEPTH, STREAM, CacheEntry
from webapp.storage.keys import item as item_key
from webapp.storage.keys import receipt as receipt_key
from webapp.storage.records import Item


def cached(rds, key):
    """The cache entry of an item, read as the app reads it."""
    return CacheEntry.parse(rds.get(item_key(key)))


def test_a_load_from_mysql_never_replaces_a_pending_write(svc, rds):
    svc.queue.append([Item("k", '{"v":"pending"}')], "key1")
    pending_version = cached(rds, "k").version
    # A loader that read MySQL just before the write (an older row, or no row) finishes now:
    entry = CacheEntry.parse(svc.cache._fill(keys=[item_key("k"), "lock"], args=[pending_version - 1, '{"v":"old"}', 1, 60000, "t"]))
    assert (entry.version, entry.data) == (pending_version, '{"v":"pending"}')
    svc.cache._fill(keys=[item_key("k"), "lock"], args=[0, "", 0, 5000, "t"])  # a miss
    assert cached(rds, "k").data == '{"v":"pending"}' and rds.pttl(item_key("k")) == -1


def test_a_newer_load_replaces_an_older_cached_entry_and_unlocks(svc, rds):
    rds.set("lock", "token")
    svc.cache._fill(keys=[item_key("k"), "lock"], args=[5, '{"v":5}', 1, 60000, "token"])
    svc.cache._fill(keys=[item_key("k"), "lock"], args=[7, '{"v":7}', 1, 60000, "other"])
    assert cached(rds, "k").data == '{"v":7}' and rds.get("lock") is None


def test_acknowledging_a_batch_twice_counts_it_once(svc, rds):
    receipt = svc.queue.append([Item("a", "{}"), Item("b", "{}")], "key1")
    svc.stream.ensure_group()
    entries = svc.stream.read_new("c1", 10, 100)
    assert svc.stream.ack(entries) == 1
    assert svc.stream.ack(entries) == 0  # redelivered and applied again: no double count
    assert not rds.exists(receipt_key(receipt.write_id))  # archived to MySQL by the drain, then let go
    assert int(rds.get(DEPTH)) == 0 and rds.xlen(STREAM) == 0
    assert int(rds.hget("spillway:stats", "persisted_items")) == 2
    assert 0 < rds.pttl(item_key("a")) <= 3600_000


def test_ack_of_a_dead_record_drops_its_pending_entry_only_if_still_current(svc, rds):
    svc.queue.append([Item("a", '{"n":1}')], "key1")
    svc.stream.ensure_group()
    entries = svc.stream.read_new("c1", 10, 100)
    svc.queue.append([Item("a", '{"n":2}')], "key1")  # a newer write
    svc.stream.ack(entries, dead_versions=frozenset({entries[0].version}))
    assert cached(rds, "a").data == '{"n":2}'  # the newer pending write is untouched


def test_warm_cache_command_fills_redis_but_never_replaces_a_pending_write(svc, db, rds, runner):
    from tests.e2e.helpers import put_row

    for key in ("a", "b", "c"):
        put_row(db, key, {"k": key}, version=1)
    svc.queue.append([Item("b", '{"k":"pending"}')], "key1")
    result = runner.invoke(args=["warm-cache"])
    assert result.exit_code == 0 and "Cached 3 items." in result.output
    assert cached(rds, "a").data == '{"k":"a"}' and rds.pttl(item_key("a")) > 0
    assert cached(rds, "b").data == '{"k":"pending"}' and rds.pttl(item_key("b")) == -1


def test_warming_an_already_cached_item_renews_its_ttl_but_never_gives_a_pending_write_one(svc, rds):
    svc.cache.warm([("a", "{}", 5, 1)])
    rds.pexpire(item_key("a"), 1000)  # about to expire
    svc.cache.warm([("a", "{}", 5, 1)])
    assert rds.pttl(item_key("a")) > 60_000
    svc.queue.append([Item("p", "{}")], "key1")
    pending = cached(rds, "p").version
    svc.cache.warm([("p", "{}", pending, 1)])  # persisted but not yet acknowledged
    assert rds.pttl(item_key("p")) == -1
