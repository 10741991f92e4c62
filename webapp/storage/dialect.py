"""MariaDB or Oracle MySQL: which server answers, whether Spillway supports it, and how the schema is spelled for it.

The migrations are written for MariaDB. Two things in them are MariaDB's own:
the key collation `utf8mb4_nopad_bin` (code-point order, no PAD SPACE) and
`ALTER TABLE ... ADD COLUMN/INDEX IF NOT EXISTS`. For MySQL 8 (and RDS,
Aurora MySQL) the collation becomes `utf8mb4_0900_bin`, which has the same
two properties, and an `ADD ... IF NOT EXISTS` is run only if
information_schema does not list the column or index yet. Everything else the
app sends is common to both (MariaDB's statement time limits sit in `/*M! */`
comments that MySQL skips).
"""
import re
from dataclasses import dataclass

MARIADB_MIN = (10, 6)  # FOR UPDATE SKIP LOCKED (redrive), ADD ... IF NOT EXISTS
MYSQL_MIN = (8, 0, 17)  # utf8mb4_0900_bin, FOR UPDATE SKIP LOCKED
KEY_COLLATION = {"mariadb": "utf8mb4_nopad_bin", "mysql": "utf8mb4_0900_bin"}

_MARIADB = re.compile(r"(\d+)\.(\d+)\.(\d+)-MariaDB", re.I)
_MYSQL = re.compile(r"^(\d+)\.(\d+)\.(\d+)")
_LEADING_COMMENTS = re.compile(r"^(?:\s*--[^\n]*(?:\n|$))*")
_ADD_IF_NOT_EXISTS = re.compile(
    r"^(\s*ALTER\s+TABLE\s+`?(\w+)`?\s+ADD\s+(COLUMN|INDEX|KEY))\s+IF\s+NOT\s+EXISTS\s+`?(\w+)`?", re.I)

Guard = tuple[str, str, str]  # ("COLUMN" or "INDEX", table, name): skip the statement if it exists


@dataclass(frozen=True)
class Server:
    """A MySQL-protocol server, from its version string (SELECT VERSION(), or the handshake's)."""

    flavour: str  # "mariadb" or "mysql"
    version: tuple[int, ...]

    @classmethod
    def from_version(cls, text: str) -> "Server":
        found = _MARIADB.search(text)
        if found:
            return cls("mariadb", tuple(int(n) for n in found.groups()))
        found = _MYSQL.match(text)
        return cls("mysql", tuple(int(n) for n in found.groups()) if found else (0,))

    def __str__(self) -> str:
        return f"{'MariaDB' if self.flavour == 'mariadb' else 'MySQL'} {'.'.join(map(str, self.version))}"

    def problem(self) -> str | None:
        """Why Spillway cannot run on this server, or None."""
        least = MARIADB_MIN if self.flavour == "mariadb" else MYSQL_MIN
        if self.version < least:
            needed = ".".join(map(str, least))
            return (f"{self} is older than the oldest supported, {'MariaDB' if self.flavour == 'mariadb' else 'MySQL'} "
                    f"{needed} (see docs/operations.md, supported versions)")
        return None

    def translate(self, sql: str) -> tuple[str, Guard | None]:
        """A migration statement as this server takes it, and the existence check it needs first (if any)."""
        if self.flavour == "mariadb":
            return sql, None
        sql = _LEADING_COMMENTS.sub("", sql.replace(KEY_COLLATION["mariadb"], KEY_COLLATION["mysql"]))
        found = _ADD_IF_NOT_EXISTS.match(sql)
        if not found:
            return sql, None
        head, table, kind, name = found.groups()
        kind = "COLUMN" if kind.upper() == "COLUMN" else "INDEX"
        return f"{head} {name}{sql[found.end():]}", (kind, table, name)


EXISTS = {
    "COLUMN": "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
              "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
    "INDEX": "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
             "AND TABLE_NAME = %s AND INDEX_NAME = %s",
}
