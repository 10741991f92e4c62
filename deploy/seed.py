"""`make seed N=410000`: load N movie-like demo items straight into MySQL; `make warm`: cache them.

Keys look like IMDb ids (tt0000001 ...), looked up by exact key. The rows are
generated inside MariaDB from its sequence engine (410,000 rows in seconds),
with a fresh version, so a later API write still wins over a seeded row and a
seeded row never rolls back a newer one. Cached entries of the seeded keys are
dropped so reads see the new rows. Works with or without `make run` running.
"""
import sys
import time

import pymysql

from deploy.bootstrap import Stack
from webapp import clock
from webapp.config import load_settings
from webapp.storage import keys
from webapp.storage.mysql import connect_kwargs
from webapp.storage.redis_client import connect
from webapp.storage.services import Services
from webapp.storage.sql.items import UPSERT

GENRES = ["Drama", "Comedy", "Thriller", "Action", "Romance", "Horror", "Documentary", "Sci-Fi", "Animation", "Crime"]


def movie_key(n):
    """The key of demo item n (1-based)."""
    return f"tt{n:07d}"


def _select(first, last, version):
    """SQL producing rows (k, data, version, deleted, updated_at) for items first..last."""
    genre = "ELT(1 + seq % 10, " + ", ".join(f"'{g}'" for g in GENRES) + ")"
    genre2 = "ELT(1 + (seq * 7) % 10, " + ", ".join(f"'{g}'" for g in GENRES) + ")"
    data = (
        "CONCAT('{\"title\":\"Movie ', seq, '\",\"year\":', 1920 + seq % 105, "
        f"',\"genres\":[\"', {genre}, '\",\"', {genre2}, '\"]', "
        "',\"rating\":', ROUND(1 + (seq * 7919 % 90) / 10, 1), "
        "',\"votes\":', seq * 37 % 100000, ',\"runtime_min\":', 80 + seq % 100, "
        "',\"director\":\"Director ', seq % 5000, '\"}')"
    )
    return (
        f"SELECT CONCAT('tt', LPAD(seq, 7, '0')), {data}, {version}, 0, UTC_TIMESTAMP(6) "
        f"FROM seq_{first}_to_{last}"
    )


def seed(settings, count, chunk=100_000):
    """Upsert `count` demo items (in chunks) and drop their cache entries; return seconds taken."""
    started = time.monotonic()
    version = clock.now_us()
    upsert_tail = UPSERT[UPSERT.index(" ON DUPLICATE KEY UPDATE"):]
    con = pymysql.connect(**connect_kwargs(settings.mysql_url, settings, 600))
    try:
        with con.cursor() as cur:
            for first in range(1, count + 1, chunk):
                last = min(count, first + chunk - 1)
                cur.execute(
                    "INSERT INTO items (k, data, version, deleted, updated_at) "
                    + _select(first, last, version) + upsert_tail
                )
    finally:
        con.close()
    client = connect(settings, blocking=False)
    for first in range(1, count + 1, 10_000):
        client.unlink(*(keys.item(movie_key(n)) for n in range(first, min(count, first + 9_999) + 1)))
    client.close()
    return time.monotonic() - started


def warm(settings):
    """Cache every persisted item through the cache's fill script; return (count, seconds)."""
    started = time.monotonic()
    services = Services(settings, role="worker")
    try:
        return services.cache.warm_all(), time.monotonic() - started
    finally:
        services.close()


def main(argv):
    """`seed [N]` (default 410000) or `--warm`: against the stack's servers (started if needed)."""
    settings = load_settings()
    stack = Stack.from_settings(settings)
    urls = stack.start()
    try:
        settings = load_settings({"mysql_url": urls["MYSQL_URL"], "redis_url": urls["REDIS_URL"]})
        if argv[1:] == ["--warm"]:
            count, took = warm(settings)
            print(f"Cached {count} items in {took:.1f}s")
        else:
            count = int(argv[1]) if len(argv) > 1 else 410_000
            took = seed(settings, count)
            print(f"Seeded {count} items ({movie_key(1)} .. {movie_key(count)}) in {took:.1f}s")
    finally:
        stack.stop(only_started=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
