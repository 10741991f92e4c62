"""Which Redis error replies mean "not now" (503 with Retry-After) and which are bugs (500)."""
import pytest
import redis

from webapp.storage.redis_client import is_unavailable

E = redis.exceptions


@pytest.mark.parametrize("err", [
    # redis-py strips these prefixes into the class and status_code: matching the text alone missed them.
    E.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.", status_code="OOM"),
    E.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'.", status_code="MASTERDOWN"),
    E.BusyLoadingError("Redis is loading the dataset in memory", status_code="LOADING"),
    E.ReadOnlyError("You can't write against a read only replica.", status_code="READONLY"),
    E.ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
    E.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."),
    E.ResponseError("NOREPLICAS Not enough good replicas to write."),
    E.ConnectionError("Connection refused"),
    E.TimeoutError("Timeout reading from socket"),
])
def test_not_now_answers_are_unavailable(err):
    assert is_unavailable(err)


@pytest.mark.parametrize("err", [
    E.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    E.ResponseError("BUSYGROUP Consumer Group name already exists"),
    E.ResponseError("ERR unknown command 'FOO'"),
    E.NoScriptError("No matching script.", status_code="NOSCRIPT"),
])
def test_bugs_are_not_unavailable(err):
    assert not is_unavailable(err)
