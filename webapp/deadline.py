"""A hard upper bound on blocking I/O inside gevent web workers.

PyMySQL and redis-py have socket timeouts, but a call can chain several of them
(DBUtils reconnects and retries a failed query, and holds its lock while it
connects), so a request could wait a multiple of the configured timeout. Under
gevent we cut the whole operation off with gevent.Timeout instead. It derives
from BaseException, so the `except Exception` blocks inside those libraries
cannot swallow it. Outside gevent (Celery's prefork workers, scripts) the
libraries' own socket timeouts are the bound and this is a no-op.
"""
from contextlib import contextmanager


def gevent_active():
    """True when the process runs under gevent's monkey patching (gunicorn -k gevent)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


class Expired(Exception):
    """Raised by deadline() when the bounded block ran out of time."""


@contextmanager
def deadline(seconds):
    """Raise Expired if the block runs longer than `seconds` (under gevent)."""
    if not seconds or not gevent_active():
        yield
        return
    import gevent

    timer = gevent.Timeout(seconds)
    timer.start()
    try:
        yield
    except gevent.Timeout as fired:
        if fired is not timer:
            raise
        raise Expired(f"no answer within {seconds:g}s") from None
    finally:
        timer.cancel()
