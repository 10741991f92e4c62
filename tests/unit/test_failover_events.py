"""Following a failover (webapp/storage/failover.py): what each Sentinel announcement does, alone."""
from webapp.config import load_settings
from webapp.storage.failover import Failover


def failover():
    settings = load_settings({"redis_url": "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/spillway/0"})
    switched = []
    found = Failover(settings)
    found.on_switch(lambda: switched.append(found.primary))
    found.primary = ("10.0.0.11", 6379)
    return found, switched


def test_a_failover_holds_writes_back_until_the_new_primary_is_named():
    f, switched = failover()
    f.event("+try-failover", "master spillway 10.0.0.11 6379")
    assert f.writes_paused()
    f.event("+switch-master", "spillway 10.0.0.11 6379 10.0.0.12 6379")
    assert not f.writes_paused() and switched == [("10.0.0.12", 6379)]


def test_another_service_an_abort_and_the_same_primary_change_nothing_else():
    f, switched = failover()
    f.event("+try-failover", "master other 10.0.0.50 6379")
    assert not f.writes_paused()
    f.event("+try-failover", "master spillway 10.0.0.11 6379")
    f.event("-failover-abort-no-good-slave", "master spillway 10.0.0.11 6379")
    assert not f.writes_paused()
    f.event("+switch-master", "spillway 10.0.0.11 6379 10.0.0.11 6379")
    assert switched == []


def test_without_sentinel_nothing_is_followed():
    f = Failover(load_settings({"redis_url": "redis://127.0.0.1:6379/0"}))
    assert not f.enabled
    f.poll(force=True)
    assert f.primary is None
