"""gunicorn's gevent worker, accepting new connections in batches.

With more than one worker, gunicorn's gevent worker sets the StreamServer's
max_accept to 1, so that one worker does not take every connection. But a
busy worker then accepts a single connection per event-loop pass, and a pass
takes milliseconds under load: a burst of 2,000 new connections left first
requests waiting 2 to 7 seconds in the listen queue (measured: up to 13% of
requests over 2 s in a run started right after another). Accepting up to
ACCEPT_BATCH per pass: no request over 2 s in three runs back to back, and
the kernel still spreads connections over the workers as they wake.
Everything else (gunicorn's HTTP parser, limits, graceful reload) is unchanged.
"""
from gevent.server import StreamServer
from gunicorn.workers import ggevent

ACCEPT_BATCH = 64


class BatchAcceptServer(StreamServer):
    """A StreamServer whose max_accept stays ACCEPT_BATCH (gunicorn's run() sets 1)."""

    max_accept = property(lambda self: ACCEPT_BATCH, lambda self, value: None)


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker with batched accepts (worker_class in gunicorn.conf.py)."""

    def run(self):
        """Build the servers with BatchAcceptServer, then run as gunicorn does."""
        ggevent.StreamServer = BatchAcceptServer  # the name gunicorn's run() looks up
        super().run()
