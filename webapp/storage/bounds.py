"""A hard time bound on a blocking call, as a hook the process fills in.

PyMySQL and redis-py have socket timeouts, but one call can chain several of
them (DBUtils reconnects and retries a failed query and holds its lock while
it connects), so a request could wait a multiple of the configured timeout.
gunicorn's gevent workers pass a Timebox that cuts the whole call off
(webapp/server/timebox.py); elsewhere (Celery's prefork workers, scripts) the
sockets' own timeouts are the bound and the box is a no-op.
"""
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

# timebox(seconds): a context manager that raises TimeoutError if its block runs longer.
Timebox = Callable[[float], AbstractContextManager[None]]


def no_timebox(seconds: float) -> AbstractContextManager[None]:
    """The Timebox of processes without gevent: sockets' own timeouts bound each call."""
    return nullcontext()
