"""SQL, one module per table; functions take an open connection or cursor."""


def statement_limit(seconds: float) -> str:
    """A prefix for a SELECT that makes the server itself abort it after `seconds` (0: no limit).

    A client's timeout only stops the waiting: the statement went on in the
    server, holding a connection and a thread past every budget. MariaDB runs
    the executable comment (SET STATEMENT max_statement_time=... FOR); other
    servers read it as a comment.

    The server stops it at 80% of `seconds`, before the client gives up: the
    client gets MySQL's own error (1969) on a connection it can keep, rather
    than a read timeout that costs it the connection.
    """
    return f"/*M!100108 SET STATEMENT max_statement_time={seconds * 0.8:.3g} FOR */ " if seconds else ""
