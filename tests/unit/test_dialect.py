"""MariaDB and MySQL: the server's version decides whether it is supported and how the migrations are spelled."""
from pathlib import Path

import pytest
from yoyo.migrations import read_sql_migration

from webapp.storage.dialect import Server

MIGRATIONS = Path(__file__).parents[2] / "webapp" / "storage" / "migrations"


@pytest.mark.parametrize(("version", "flavour", "numbers"), [
    ("5.5.5-10.11.19-MariaDB-0+deb12u1", "mariadb", (10, 11, 19)),  # what PyMySQL's handshake shows
    ("10.6.16-MariaDB-log", "mariadb", (10, 6, 16)),  # SELECT VERSION()
    ("8.0.36", "mysql", (8, 0, 36)),
    ("a build of its own", "mysql", (0,)),  # no version to read: refused, not guessed
    ("8.4.0-commercial", "mysql", (8, 4, 0)),
])
def test_the_flavour_and_version_come_from_the_version_string(version, flavour, numbers):
    server = Server.from_version(version)
    assert (server.flavour, server.version) == (flavour, numbers)


def test_old_servers_are_refused_with_the_version_they_need():
    assert Server.from_version("10.11.19-MariaDB").problem() is None
    assert Server.from_version("8.0.17").problem() is None
    assert "MariaDB 10.6" in Server.from_version("10.5.23-MariaDB").problem()
    assert "MySQL 8.0.17" in Server.from_version("5.7.44").problem()


def test_mariadb_takes_the_migrations_as_written():
    sql = "ALTER TABLE items ADD INDEX IF NOT EXISTS items_tombstones (tombstone_version)"
    assert Server("mariadb", (10, 11, 0)).translate(sql) == (sql, None)


def test_mysql_gets_its_collation_and_existence_checks_instead_of_if_not_exists():
    mysql = Server("mysql", (8, 0, 36))
    assert mysql.translate("ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS accepted_at DATETIME(6) NULL") == (
        "ALTER TABLE dead_letters ADD COLUMN accepted_at DATETIME(6) NULL", ("COLUMN", "dead_letters", "accepted_at"))
    assert mysql.translate("ALTER TABLE items ADD INDEX IF NOT EXISTS items_tombstones (tombstone_version)") == (
        "ALTER TABLE items ADD INDEX items_tombstones (tombstone_version)", ("INDEX", "items", "items_tombstones"))
    sql, guard = mysql.translate("CREATE TABLE t (k VARCHAR(9) COLLATE utf8mb4_nopad_bin) COLLATE=utf8mb4_nopad_bin")
    assert sql == "CREATE TABLE t (k VARCHAR(9) COLLATE utf8mb4_0900_bin) COLLATE=utf8mb4_0900_bin" and guard is None


def test_no_migration_statement_reaches_mysql_with_what_only_mariadb_takes():
    mysql = Server("mysql", (8, 0, 36))
    statements = [s for path in sorted(MIGRATIONS.glob("*.sql")) for s in read_sql_migration(str(path))[2]]
    assert len(statements) >= 6
    guarded = 0
    for statement in statements:  # as yoyo hands them to the cursor, comments and all
        sql, guard = mysql.translate(statement)
        guarded += guard is not None
        assert "nopad" not in sql.lower() and "if not exists" not in sql.lower().replace("create table if not exists",
                                                                                          ""), sql
    assert guarded == 4  # two in the baseline, two in 0002


def test_redis_older_than_7_is_refused():
    from webapp.storage.startup import redis_too_old

    assert not redis_too_old("7.0.15") and not redis_too_old("7.2.4") and not redis_too_old("8.0.0")
    assert redis_too_old("6.2.14") and redis_too_old("5.0.7") and redis_too_old("")
