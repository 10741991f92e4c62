"""Answers written below Flask: the API's JSON error shape, for the WSGI layers in this ring."""
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from webapp import jsonio
from webapp.http.environ import ERROR_CODE, FORCE_CLOSE
from webapp.http.errors import APIError

# gunicorn decides itself whether a connection stays open and ignores a Connection header
# from the app; Observe leaves the response's force_close() under FORCE_CLOSE for the layers below it.


def error(environ: dict[str, Any], start_response: Any, err: APIError) -> Iterable[bytes]:
    """Answer with err's status, headers and {"error": {...}} body; its code goes to the request's log line.

    An answer that says "Connection: close" (a body left half-read) really closes it.
    """
    environ[ERROR_CODE] = err.code
    if err.headers.get("Connection") == "close" and environ.get(FORCE_CLOSE):
        environ[FORCE_CLOSE]()
    body = jsonio.encode(err.body())
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *err.headers.items()]
    start_response(f"{err.status} {HTTPStatus(err.status).phrase}", headers)
    return [body]
