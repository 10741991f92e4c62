"""Which MySQL errors blame the record (dead letter) and which blame the server (retry)."""
import pymysql
import pytest

from webapp.storage.errors import DatabaseUnavailable
from webapp.storage.writer import is_data_error


@pytest.mark.parametrize("code", [1048, 1062, 1264, 1265, 1292, 1300, 1366, 1406, 1451, 1452, 1644, 1690, 3819, 4025])
def test_data_errors_blame_the_record(code):
    assert is_data_error(pymysql.err.DataError(code, "rejected"))


@pytest.mark.parametrize("code", [
    1317,  # query interrupted (KILL QUERY)
    1969,  # max_statement_time
    1114, 1021, 1030, 1180,  # table full, disk full, storage engine errors, error during commit
    1637,  # too many active concurrent transactions
    1205, 1213,  # lock wait timeout, deadlock
    1290, 1836,  # read-only server
    1146, 1054,  # a missing table or column: the schema, not the data
    2013, 2006,  # lost connection, server gone away
    9999,  # anything unknown is the server's until proven otherwise
])
def test_server_errors_blame_the_server(code):
    assert not is_data_error(pymysql.err.OperationalError(code, "the server's trouble"))


def test_an_unreachable_database_is_never_the_record():
    assert not is_data_error(DatabaseUnavailable("down"))
