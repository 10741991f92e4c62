"""SQL, one module per table; functions take an open connection or cursor."""


def statement_limit(seconds: float) -> str:
    """A prefix for a SELECT that makes the server itself abort it after `seconds` (0: no limit).

    A client's timeout only stops the waiting: the statement went on in the
    server, holding a connection and a thread past every budget. MariaDB runs
    the executable comment (SET STATEMENT max_statement_time=... FOR); other
    servers read it as a comment.
    """
    return f"/*M!100108 SET STATEMENT max_statement_time={seconds:g} FOR */ " if seconds else ""
