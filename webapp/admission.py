"""Admission control: a bound on requests running app code at once in one worker.

A gevent worker accepts thousands of connections. If all of their requests
run at once, each waits its turn on one CPU, and a healthy Redis or MySQL
call that took 0.1 ms can appear to take seconds, so deadlines meant for a
dead server fire on a merely busy worker. Requests past the bound wait here,
first come first served, before doing any work: the ones running finish fast,
and a slow queue shows up as latency, not as false 503s.
"""
import threading


class AdmissionControl:
    """WSGI middleware: at most `limit` requests in the app at once (health checks excepted)."""

    def __init__(self, app, limit, exempt=("/healthz",)):
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self._slots = threading.Semaphore(limit)  # gevent's, once patched: FIFO waiters

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") in self.exempt:
            return self.app(environ, start_response)
        with self._slots:
            return self.app(environ, start_response)
