"""Logs as JSON lines: one per request (webapp/server/observe.py), and every other record too.

Request lines are appended to a buffer and written out twice a second (or
when 64 KiB have gathered): one write per request costs a system call, and
under supervisord a pipe read in another process, thousands of times a second.
"""
import atexit
import json
import logging
import os
import sys
import threading
import time
from typing import Any

FLUSH_SECONDS = 0.5
FLUSH_BYTES = 64 * 1024


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds (the whole seconds formatted once a second: it runs per request)."""
    seconds = time.time() if seconds is None else seconds
    whole = int(seconds)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int(seconds % 1 * 1000):03d}Z"


class JSONFormatter(logging.Formatter):
    """Format log records as one JSON object per line (traceback included)."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {"ts": timestamp(record.created), "level": record.levelname.lower(),
                                "logger": record.name, "process": self.process_name, "pid": record.process,
                                "msg": record.getMessage()}
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: str, process_name: str) -> None:
    """Send every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class LineBuffer:
    """Collects log lines and writes them to a file descriptor in batches."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._pid: int | None = None

    def write(self, line: str) -> None:
        """Queue one line (no newline); written within FLUSH_SECONDS."""
        if self._pid != os.getpid():  # first use in this process: start its flusher
            self._pid = os.getpid()
            self._flusher = threading.Thread(target=self._flush_forever, daemon=True, name="log-flush")
            self._flusher.start()
            atexit.register(self.flush)  # a worker that exits writes out what it holds
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            full = self._size >= FLUSH_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        """Write out everything queued."""
        with self._lock:
            lines, self._lines, self._size = self._lines, [], 0
        if lines:
            data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
            while data:
                data = data[os.write(self.fd, data):]

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


request_lines = LineBuffer()
