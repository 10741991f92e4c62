"""Following a Redis failover at once, not after the old primary's connections fail.

Each process's connections are made through Sentinel, but a connection once
made stays with its server: after a failover (planned, or the primary cut off
from the others) the old primary can go on taking writes, which it throws away
when it rejoins as a replica. Two things close that window:

- the Sentinels announce a failover on their `+try-failover` channel before
  they promote anyone: from then until `+switch-master` (or FAILOVER_PAUSE_S),
  writes answer 503 `queue_unavailable`, so no accept lands on the primary
  being replaced while the replica may still lack it;
- the primary's address is asked again (`poll()`, at most once a second), and
  a new one drops every connection (the pool's and the coalescer's), so the
  next command goes to the new primary.

The web listens to the Sentinels in a greenlet (webapp/server/failover.py); the
drain polls between batches. Without Sentinel, none of this runs.
"""
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from webapp.config import Settings
from webapp.storage import redis_client

log = logging.getLogger(__name__)

FAILOVER_PAUSE_S = 10.0  # writes wait at most this long for +switch-master after +try-failover
POLL_S = 1.0
EVENTS = ("+try-failover", "+switch-master", "-failover-abort-not-elected", "-failover-abort-no-good-slave",
          "-failover-abort-slave-timeout")


class Failover:
    """The primary this process writes to, and whether a failover is under way."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target = settings.redis
        self.primary: tuple[str, int] | None = None
        self.paused_until = 0.0
        self._polled = 0.0
        self._on_switch: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when Redis is found through Sentinel."""
        return self.target.is_sentinel

    def on_switch(self, callback: Callable[[], None]) -> None:
        """Call `callback` (drop connections) when the primary changes."""
        self._on_switch.append(callback)

    def writes_paused(self) -> bool:
        """True while a failover is under way (writes then answer 503 with Retry-After)."""
        return time.monotonic() < self.paused_until

    def poll(self, force: bool = False) -> None:
        """Ask the Sentinels where the primary is (at most once a second); a new one drops the connections."""
        if not self.enabled or (not force and time.monotonic() - self._polled < POLL_S):
            return
        self._polled = time.monotonic()
        try:
            manager = redis_client.sentinel(self.settings, self.target)
            found = manager.discover_master(self.target.service)  # type: ignore[no-untyped-call]
        except redis.RedisError:  # no Sentinel answers, or none knows a primary: an election, or a partition
            return
        self._switched(tuple(found))

    def event(self, channel: str, data: str) -> None:
        """A Sentinel's announcement (see EVENTS)."""
        if channel == "+try-failover" and self.target.service in data.split():
            log.warning("redis: the Sentinels began a failover of %s; writes wait for it", self.target.service)
            self.paused_until = time.monotonic() + FAILOVER_PAUSE_S
        elif channel == "+switch-master":
            name, _, _, host, port = data.split()[:5]
            if name == self.target.service:
                self._switched((host, int(port)))
                self.paused_until = 0.0
        elif channel.startswith("-failover-abort") and self.target.service in data.split():
            self.paused_until = 0.0

    def _switched(self, found: tuple[Any, ...]) -> None:
        with self._lock:
            old, self.primary = self.primary, (str(found[0]), int(found[1]))
        if old is not None and old != self.primary:
            log.warning("redis: the primary moved from %s:%s to %s:%s; reconnecting", *old, *self.primary)
            for callback in self._on_switch:
                callback()

    def listen(self, index: int, stop: Callable[[], bool]) -> None:
        """Follow Sentinel number `index`'s announcements until stop() (a blocking loop for a greenlet or thread)."""
        host, port = self.target.sentinels[index]
        while not stop():
            client = redis.Redis(host=host, port=port, password=self.target.sentinel_password or None,
                                 socket_connect_timeout=1, socket_timeout=POLL_S * 5, decode_responses=True)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(*EVENTS)
                while not stop():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self.event(message["channel"], message["data"])
                    self.poll()
            except redis.RedisError:
                time.sleep(POLL_S)  # this Sentinel is away: the others still speak
            finally:
                client.close()
