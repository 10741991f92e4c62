"""SQL of the dead_letters table: records MySQL rejected, with the reason."""
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from webapp.storage.records import Queued

INSERT = (
    "INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at) "
    "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version"
)


def row(queued: Queued, kind: str, reason: str) -> tuple[int, str, str, bytes, str]:
    """The dead_letters row of a rejected record: its fields as a JSON object, and the reason."""
    record = json.dumps(dataclasses.asdict(queued.record), ensure_ascii=False).encode()
    return (queued.version, queued.write_id, kind, record, reason)


def insert(cur: Any, rows: Sequence[tuple[int, str, str, bytes, str]]) -> None:
    """Store (version, write_id, kind, record JSON, reason) rows; a repeat is kept once."""
    cur.executemany(INSERT, rows)


def for_write(con: Any, write_id: str) -> list[tuple[int, str, str]]:
    """The dead letters of one write: [(version, record JSON, reason)]."""
    with con.cursor() as cur:
        cur.execute("SELECT version, record, reason FROM dead_letters WHERE write_id = %s ORDER BY version",
                    (write_id,))
        return [(int(v), r.decode() if isinstance(r, bytes) else r, reason) for v, r, reason in cur.fetchall()]
