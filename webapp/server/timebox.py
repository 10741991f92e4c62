"""A hard upper bound on blocking I/O inside gevent web workers (storage's Timebox hook).

PyMySQL and redis-py have socket timeouts, but a call can chain several of them
(DBUtils reconnects and retries a failed query, and holds its lock while it
connects), so a request could wait a multiple of the configured timeout.
Under gevent the whole operation is cut off with gevent.Timeout instead. It
derives from BaseException, so the `except Exception` blocks inside those
libraries cannot swallow it; it leaves the box as TimeoutError.
"""
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from gevent import monkey


def gevent_active() -> bool:
    """True when the process runs under gevent's monkey patching (gunicorn -k gevent)."""
    return bool(monkey.is_module_patched("socket"))


@contextmanager
def timebox(seconds: float) -> Iterator[None]:
    """Raise TimeoutError if the block runs longer than `seconds`."""
    if not seconds:
        yield
        return
    timer = gevent.Timeout(seconds)
    timer.start()
    try:
        yield
    except gevent.Timeout as fired:
        if fired is not timer:
            raise
        raise TimeoutError(f"no answer within {seconds:g}s") from None
    finally:
        timer.cancel()
