"""Keys the WSGI layers and the Flask views leave in a request's environ for each other."""

ERROR_CODE = "spillway.error"  # the error code an answer carried, for the request's log line
REQUEST_ID = "spillway.request_id"  # this request's id (X-Request-ID)
PEEKED = "spillway.peeked"  # the item fast path asked Redis already, and missed
FORCE_CLOSE = "spillway.force_close"  # closes the connection after the answer (gunicorn's Response.force_close)
