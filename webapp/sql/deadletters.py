"""SQL of the dead_letters table: records MySQL rejected, with the reason."""
INSERT = (
    "INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at) "
    "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version"
)


def insert(cur, rows):
    """Store (version, write_id, kind, record JSON, reason) rows; a repeat is kept once."""
    cur.executemany(INSERT, rows)


def for_write(con, write_id):
    """The dead letters of one write: [(version, record JSON, reason)]."""
    with con.cursor() as cur:
        cur.execute("SELECT version, record, reason FROM dead_letters WHERE write_id = %s ORDER BY version", (write_id,))
        return [(int(v), r.decode() if isinstance(r, bytes) else r, reason) for v, r, reason in cur.fetchall()]
