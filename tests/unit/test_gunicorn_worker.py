"""The worker's response puts head and body on the wire together, and never loses the head."""
import pytest
from gunicorn.config import Config

from webapp.server.gunicorn_worker import OneSendResponse, http_date


class Request:
    version = (1, 1)

    def __init__(self, method: str) -> None:
        self.method = method

    def should_close(self) -> bool:
        return False


class Socket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    send = sendall


def respond(method: str, status: str, headers: list[tuple[str, str]], body: list[bytes]) -> list[bytes]:
    sock = Socket()
    resp = OneSendResponse(Request(method), sock, Config())
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return sock.sends


def test_a_response_with_a_length_goes_out_in_one_send():
    sends = respond("GET", "200 OK", [("Content-Length", "2")], [b"{}"])
    assert len(sends) == 1
    assert sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and sends[0].endswith(b"\r\n\r\n{}")


@pytest.mark.parametrize("method,status,body", [
    ("OPTIONS", "200 OK", []),       # Flask's OPTIONS answer: an empty iterable, write() never called
    ("GET", "200 OK", [b""]),        # an empty chunk, cut off by Content-Length 0
    ("HEAD", "200 OK", [b"{}"]),     # a body the method forbids
    ("DELETE", "204 NO CONTENT", []),
])
def test_a_response_without_body_bytes_still_sends_its_head_once(method, status, body):
    length = [] if status.startswith("204") else [("Content-Length", "0" if method != "HEAD" else "2")]
    sends = respond(method, status, length, body)
    assert len(sends) == 1 and sends[0].startswith(f"HTTP/1.1 {status}\r\n".encode()) and sends[0].endswith(b"\r\n\r\n")


def test_a_chunked_response_keeps_gunicorns_framing():
    sends = respond("GET", "200 OK", [], [b"abc"])
    joined = b"".join(sends)
    assert b"Transfer-Encoding: chunked" in joined and joined.endswith(b"3\r\nabc\r\n0\r\n\r\n")


def test_the_date_header_is_the_current_second_in_http_format():
    import email.utils
    import time
    assert abs(email.utils.parsedate_to_datetime(http_date()).timestamp() - time.time()) < 2
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
