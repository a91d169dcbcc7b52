"""The tracking table (public.schema_migrations unless --table): read it, extend it, record files."""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from .. import __version__
from ..errors import ConfigError
from ..settings import TRACKING_TABLE, TableName

# The old runner's table has the first three; kgmigrate adds the others in place.
_INTEGER = {"integer", "bigint", "smallint"}
_TEXT = {"text", "character varying"}
_TIMESTAMP = {"timestamp without time zone", "timestamp with time zone"}
REQUIRED = {"version": _INTEGER, "name": _TEXT, "applied_at": _TIMESTAMP}
ADDED = {"checksum": ("TEXT", _TEXT), "execution_ms": ("INTEGER", _INTEGER),
         "applied_by": ("TEXT", _TEXT), "down_checksum": ("TEXT", _TEXT),
         "applied_order": ("INTEGER", _INTEGER)}
COLUMNS = ("version", "name", "applied_at", "checksum", "execution_ms", "applied_by",
           "down_checksum", "applied_order")


@dataclass(frozen=True)
class AppliedRow:
    """One row of the tracking table."""

    version: int
    name: str
    applied_at: dt.datetime | None
    checksum: str | None
    execution_ms: int | None
    applied_by: str | None
    down_checksum: str | None = None  # of the down file, when it had one
    applied_order: int | None = None  # 1 for the first file applied, then 2, ...


@dataclass(frozen=True)
class DbState:
    """What the database says about its migrations."""

    has_table: bool
    applied: dict[int, AppliedRow]
    columns: frozenset[str] = frozenset()

    @property
    def current_version(self) -> int | None:
        return max(self.applied) if self.applied else None

    def in_applied_order(self) -> list[int]:
        """Return the applied versions in the order they ran (rows without one: by version)."""
        return sorted(self.applied, key=lambda v: (self.applied[v].applied_order is None,
                                                   self.applied[v].applied_order or 0, v))


def applied_by() -> str:
    """Return who applies: user@host (kgmigrate version)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (kgmigrate {__version__})"


def quoted(conn: psycopg.Connection, table: TableName) -> str:
    """Return the table's name quoted for SQL text."""
    return sql.Identifier(table.schema, table.name).as_string(conn)


def _guess_owner(conn: psycopg.Connection, table: TableName, cols: dict[str, str]) -> str:
    if cols.get("version") == "bigint" and cols.get("dirty") == "boolean" and len(cols) == 2:
        return " (golang-migrate's shape)"
    if set(cols) == {"version"} and cols["version"] in _TEXT:
        rails = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'ar_internal_metadata')",
            (table.schema,)).fetchone()[0]
        return " (Rails' shape)" if rails else " (dbmate's or Rails' shape)"
    return ""


def _check_shape(conn: psycopg.Connection, table: TableName, relkind: str,
                 cols: dict[str, str]) -> None:
    """Refuse, before anything changes, a table of that name that is not the old runner's or ours."""
    expected = {**REQUIRED, **{c: types for c, (_, types) in ADDED.items()}}
    wrong = [c for c, t in cols.items() if c not in expected or t not in expected[c]]
    missing = [c for c in REQUIRED if c not in cols]
    if relkind in ("r", "p") and not wrong and not missing:
        return
    have = ", ".join(f"{c} {t}" for c, t in cols.items()) or "no columns"
    what = "a table" if relkind in ("r", "p") else "not a table"
    raise ConfigError(
        f"{table} is not kgmigrate's tracking table: it is {what} with {have}"
        f"{_guess_owner(conn, table, cols)}, where kgmigrate expects version integer, name text, "
        f"applied_at timestamp. Another tool may own it; kgmigrate changed nothing. Keep "
        f"kgmigrate's history elsewhere with --table SCHEMA.NAME (env KG_MIGRATIONS_TABLE), "
        f"e.g. --table kgmigrate.schema_migrations")


def read_state(conn: psycopg.Connection, table: TableName = TRACKING_TABLE) -> DbState:
    """Read the tracking table (whichever of its columns exist).

    A relation of that name in another tool's shape is refused (ConfigError) untouched.
    """
    rows = conn.execute(
        "SELECT c.relkind::text, a.attname::text, a.atttypid::regtype::text "
        "FROM (SELECT 1) one "
        "LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = %s "
        "LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = %s "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum", (table.schema, table.name)).fetchall()
    relkind = rows[0][0]
    if relkind is None:
        return DbState(False, {})
    cols = {r[1]: r[2] for r in rows if r[1] is not None}
    _check_shape(conn, table, relkind, cols)
    pick = sql.SQL(", ").join(sql.Identifier(c) if c in cols else sql.SQL("NULL")
                              for c in COLUMNS)
    found = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY version").format(
        pick, sql.Identifier(table.schema, table.name))).fetchall()
    return DbState(True, {r[0]: AppliedRow(*r) for r in found}, frozenset(cols))


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    """Tell whether the database has a schema of that name."""
    return conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s",
                        (schema,)).fetchone() is not None


def ensure_sql(conn: psycopg.Connection, table: TableName,
               state: DbState | None = None) -> list[str]:
    """Return the SQL that creates the table (and its schema) or adds the columns it lacks.

    With the `state` read under the lock only what is missing is changed (ALTER TABLE and
    CREATE SCHEMA need privileges even when they would change nothing); without it, every step is
    idempotent, for a transaction whose earlier statements (a baseline) may create the table.
    """
    name = quoted(conn, table)
    out = []
    if state is None or not state.has_table:
        if not schema_exists(conn, table.schema):
            out.append(f"CREATE SCHEMA IF NOT EXISTS {sql.Identifier(table.schema).as_string(conn)}")
        out.append(f"CREATE TABLE IF NOT EXISTS {name} (version INTEGER PRIMARY KEY, "
                   f"name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT NOW(), "
                   f"checksum TEXT, execution_ms INTEGER, applied_by TEXT, "
                   f"down_checksum TEXT, applied_order INTEGER)")
    missing = [c for c in ADDED if state is None or (state.has_table and c not in state.columns)]
    out += [f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {c} {ADDED[c][0]}" for c in missing]
    if "applied_order" in missing:
        # Rows applied before the column existed: the order known, when they ran then version.
        out.append(f"UPDATE {name} t SET applied_order = o.n FROM (SELECT version, row_number() "
                   f"OVER (ORDER BY applied_at, version) AS n FROM {name}) o "
                   f"WHERE t.version = o.version AND t.applied_order IS NULL")
    return out


def ensure_table(conn: psycopg.Connection, table: TableName, state: DbState) -> None:
    """Create the tracking table, or add the columns an old one lacks (in the caller's transaction)."""
    for stmt in ensure_sql(conn, table, state):
        conn.execute(stmt)


_RECORD = """
INSERT INTO {table} (version, name, checksum, execution_ms, applied_by, down_checksum,
                     applied_order)
VALUES (%s, %s, %s,
        -- None: the time this transaction has run so far, i.e. the file's statements
        COALESCE(%s, round(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer), %s,
        %s, (SELECT COALESCE(max(applied_order), 0) + 1 FROM {table}))
ON CONFLICT (version) DO UPDATE
   SET checksum = EXCLUDED.checksum,
       execution_ms = EXCLUDED.execution_ms,
       applied_by = EXCLUDED.applied_by,
       down_checksum = EXCLUDED.down_checksum,
       applied_order = COALESCE({table}.applied_order, EXCLUDED.applied_order)"""


def record_sql(conn: psycopg.Connection, table: TableName, version: int, name: str,
               checksum: str, by: str, execution_ms: int | None = None,
               down_checksum: str | None = None) -> str:
    """Return the SQL recording an applied file (or completing the row the file inserted itself).

    With execution_ms None the server measures it: the time the current transaction has run, i.e.
    the file's statements when the SQL runs at the end of the file's own transaction.
    """
    # libpq's own quoting: psycopg's sql composition costs more than the rest of a file's work.
    esc = pq.Escaping(conn.pgconn)
    enc = conn.info.encoding

    def literal(text: str) -> str:
        return esc.escape_literal(text.encode(enc)).decode(enc)

    ms = "NULL" if execution_ms is None else str(int(execution_ms))
    down = "NULL" if down_checksum is None else literal(down_checksum)
    return (_RECORD.replace("{table}", quoted(conn, table))
            % (int(version), literal(name), literal(checksum), ms, literal(by), down))


def delete_sql(conn: psycopg.Connection, table: TableName, version: int) -> str:
    """Return the SQL forgetting a reversed file (run in the down file's own transaction)."""
    return f"DELETE FROM {quoted(conn, table)} WHERE version = {int(version)}"


def set_checksum(conn: psycopg.Connection, table: TableName, version: int, checksum: str,
                 column: str = "checksum") -> None:
    """Store the checksum of an applied file (`column` down_checksum: of its down file)."""
    conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE version = %s").format(
        sql.Identifier(table.schema, table.name), sql.Identifier(column)), (checksum, version))
