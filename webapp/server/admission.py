"""Admission control: a bound on requests running app code at once in one worker.

A gevent worker accepts thousands of connections. If all of their requests
run at once, each waits its turn on one CPU, and a healthy Redis or MySQL
call that took 0.1 ms can appear to take seconds, so deadlines meant for a
dead server fire on a merely busy worker (measured before this existed: 4,571
false 503s in 10 s at 2,000 connections). Requests past the bound wait here,
strictly first come first served, before doing any work.

Strictly: a released slot is handed to the oldest waiter, never taken by
whoever asks next. gevent's Semaphore wakes waiters on the next loop pass,
so a keep-alive connection whose next request was already waiting took the
slot back at once and the queue starved (measured: 2.6% of requests over 2 s
at 2,000 connections).
"""
import threading
from collections import deque
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment


class FifoSlots:
    """A counting semaphore whose waiters are served in arrival order."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, waiting behind everyone who asked earlier."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            handed = threading.Event()
            self._waiters.append(handed)
        try:
            handed.wait()
        except BaseException:  # killed while waiting: give back a slot handed meanwhile
            with self._lock:
                if handed.is_set():
                    self._release_locked()
                else:
                    self._waiters.remove(handed)
            raise

    def release(self) -> None:
        """Hand the slot to the oldest waiter, or free it."""
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self._free += 1

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class AdmissionControl:
    """WSGI middleware: at most `limit` requests in the app at once (health checks excepted)."""

    def __init__(self, app: WSGIApplication, limit: int, exempt: tuple[str, ...] = ("/healthz",)) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self._slots = FifoSlots(limit)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self.exempt:
            return self.app(environ, start_response)
        with self._slots:
            return self.app(environ, start_response)
