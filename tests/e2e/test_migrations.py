"""Schema migrations: a database made by the old schema.sql upgrades in place, its data intact, once."""
import dataclasses
import json

import pymysql
import pytest

from deploy.bootstrap import DB_USER, _secret_file
from webapp.storage.migrate import MIGRATIONS, migrate, pending
from webapp.storage.mysql import connect_kwargs

# The first migration is schema.sql as it was before migrations, word for word but for its header comment.
OLD_SCHEMA = MIGRATIONS / "0001.baseline.sql"
DATABASE = "spillway_upgrade"


@pytest.fixture()
def old_database(stack, settings):
    """A database created by schema.sql as it was before migrations, with rows in every table."""
    password = _secret_file(stack.var_dir, "mariadb.password")
    stack.mariadb.sql(f"DROP DATABASE IF EXISTS {DATABASE}")
    stack.mariadb.ensure_database(DATABASE, DB_USER, password)
    url = stack.mariadb.url(DATABASE, DB_USER, password)
    con = pymysql.connect(**connect_kwargs(url, settings, 30))
    with con.cursor() as cur:
        sql = "\n".join(line for line in OLD_SCHEMA.read_text().splitlines() if not line.lstrip().startswith("--"))
        for statement in sql.split(";"):  # as the old apply_schema() ran it
            if statement.strip():
                cur.execute(statement)
        cur.executemany("INSERT INTO items (k, data, version, deleted, updated_at) VALUES (%s, %s, %s, %s, NOW(6))",
                        [("live", json.dumps({"v": 1}), 10, 0), ("gone", None, 20, 1)])
        cur.execute("INSERT INTO events (seq, name, level, occurred_at, received_at, data) "
                    "VALUES (30, 'e', 'info', NOW(6), NOW(6), '{}')")
        cur.execute("INSERT INTO dead_letters (version, write_id, kind, record, reason, failed_at, accepted_at) "
                    "VALUES (40, 'w_x', 'items', '{}', 'r', NOW(6), NOW(6))")
    yield dataclasses.replace(settings, mysql_url=url), con
    con.close()
    stack.mariadb.sql(f"DROP DATABASE IF EXISTS {DATABASE}")


def test_a_database_made_by_the_old_schema_upgrades_in_place_with_its_data(old_database):
    settings, con = old_database
    assert pending(settings) == ["0001.baseline", "0002.retention-by-index", "0003.writes"]
    assert migrate(settings) == ["0001.baseline", "0002.retention-by-index", "0003.writes"]
    with con.cursor() as cur:
        cur.execute("SELECT k, data, version, tombstone_version FROM items ORDER BY k")
        assert cur.fetchall() == (("gone", None, 20, 20), ("live", '{"v": 1}', 10, None))
        cur.execute("SELECT seq FROM events")
        assert cur.fetchall() == ((30,),)
        cur.execute("SELECT version, write_id FROM dead_letters")
        assert cur.fetchall() == ((40, "w_x"),)
        cur.execute("SELECT COUNT(*) FROM writes")
        assert cur.fetchone() == (0,)
        cur.execute("SHOW INDEX FROM items WHERE Key_name = 'items_tombstones'")
        assert cur.fetchall()
    assert pending(settings) == [] and migrate(settings) == []  # applied once
