"""SQL for public.schema_migrations: read it, extend it, record applied files."""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from dataclasses import dataclass

import psycopg
from psycopg import pq

from . import __version__

TABLE = "public.schema_migrations"

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT NOW(),
    checksum TEXT,
    execution_ms INTEGER,
    applied_by TEXT
)"""

# Columns the old bash runner's table lacks; added in place so old databases keep working.
ADD_COLUMNS = [f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {col}"
               for col in ("checksum TEXT", "execution_ms INTEGER", "applied_by TEXT")]
ENSURE_TABLE = [CREATE_TABLE, *ADD_COLUMNS]

RECORD = f"""
INSERT INTO {TABLE} (version, name, checksum, execution_ms, applied_by)
VALUES (%s, %s, %s,
        -- None: the time this transaction has run so far, i.e. the file's statements
        COALESCE(%s, round(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer), %s)
ON CONFLICT (version) DO UPDATE
   SET checksum = EXCLUDED.checksum,
       execution_ms = EXCLUDED.execution_ms,
       applied_by = EXCLUDED.applied_by"""


@dataclass(frozen=True)
class AppliedRow:
    """One row of the tracking table."""

    version: int
    name: str
    applied_at: dt.datetime | None
    checksum: str | None
    execution_ms: int | None
    applied_by: str | None


@dataclass(frozen=True)
class DbState:
    """What the database says about its migrations."""

    has_table: bool
    has_kg_api: bool
    applied: dict[int, AppliedRow]

    @property
    def fresh(self) -> bool:
        """A database nothing was ever applied to: no tracking table and no kg_api schema."""
        return not self.has_table and not self.has_kg_api

    @property
    def current_version(self) -> int | None:
        return max(self.applied) if self.applied else None


def applied_by() -> str:
    """Return who applies: user@host (kgmigrate version)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (kgmigrate {__version__})"


def read_state(conn: psycopg.Connection) -> DbState:
    """Read the tracking table (whichever columns it has) and whether kg_api exists."""
    has_table, has_kg_api = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, "
        "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'kg_api')", (TABLE,)).fetchone()
    if not has_table:
        return DbState(False, has_kg_api, {})
    cols = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped", (TABLE,))}
    pick = [c if c in cols else f"NULL AS {c}"
            for c in ("version", "name", "applied_at", "checksum", "execution_ms", "applied_by")]
    rows = conn.execute(f"SELECT {', '.join(pick)} FROM {TABLE} ORDER BY version").fetchall()
    return DbState(True, has_kg_api, {r[0]: AppliedRow(*r) for r in rows})


def ensure_table(conn: psycopg.Connection) -> None:
    """Create the tracking table, or add the columns an old one lacks (in the caller's transaction)."""
    for stmt in ENSURE_TABLE:
        conn.execute(stmt)


def record(conn: psycopg.Connection, version: int, name: str, checksum: str,
           execution_ms: int | None, by: str) -> None:
    """Record an applied file; a row the file inserted itself gets the checksum and timing.

    With execution_ms None the server measures it: the time the current transaction has run.
    """
    conn.execute(RECORD, (version, name, checksum, execution_ms, by))


def record_sql(conn: psycopg.Connection, version: int, name: str, checksum: str, by: str) -> str:
    """Return the SQL recording a file inside its own transaction (the server times the file)."""
    # libpq's own quoting: psycopg's sql composition costs more than the rest of a file's work.
    esc = pq.Escaping(conn.pgconn)
    enc = conn.info.encoding

    def literal(text: str) -> str:
        return esc.escape_literal(text.encode(enc)).decode(enc)

    return RECORD % (int(version), literal(name), literal(checksum), "NULL", literal(by))


def set_checksum(conn: psycopg.Connection, version: int, checksum: str) -> None:
    """Store the checksum of an applied file."""
    conn.execute(f"UPDATE {TABLE} SET checksum = %s WHERE version = %s", (checksum, version))
