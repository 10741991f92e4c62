"""SQL, one module per table; functions take an open connection or cursor."""
