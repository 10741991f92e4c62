"""The ceiling reference: a bare WSGI hello-world, run under the same gunicorn.conf.py.

GET answers a tiny JSON body; POST reads the body and answers 202, so writes
have a ceiling too.
"""


def app(environ, start_response):
    """Answer without doing anything: the cost of gunicorn + gevent alone."""
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()
        status, body = "202 Accepted", b'{"accepted":true}'
    else:
        status, body = "200 OK", b'{"hello":"world"}'
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
