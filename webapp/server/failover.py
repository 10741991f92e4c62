"""Each web worker listens to the Sentinels (one greenlet a Sentinel) and follows a failover at once.

See webapp/storage/failover.py: a `+try-failover` holds writes back (503)
until `+switch-master`, and a new primary drops the worker's connections. The
greenlets run as long as the worker; they cost a connection to each Sentinel.
"""
import gevent

from webapp.storage.failover import Failover


def follow(failover: Failover) -> list[gevent.Greenlet]:
    """Start following the Sentinels of `failover` (nothing without Sentinel); the greenlets."""
    if not failover.enabled:
        return []
    failover.poll(force=True)  # the primary we start with
    return [gevent.spawn(failover.listen, index, lambda: False) for index in range(len(failover.target.sentinels))]
