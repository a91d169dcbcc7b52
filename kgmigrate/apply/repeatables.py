"""Where repeatable files stand in a database, and their tracking table.

They are tracked in a companion table beside the versioned one (`<table>_repeatable`: name,
checksum, applied_at, execution_ms, applied_by), created when the first one runs: the versioned
table keeps its integer primary key and its shape (the old runner's, other readers'), and a
database without repeatable files never gets the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from ..files.repeatable import RepeatableFile
from ..settings import TableName
from . import tracking


@dataclass(frozen=True)
class RepeatableState:
    """A repeatable file against what the database recorded: current, changed or new."""

    file: RepeatableFile
    status: str
    applied_at: object = None

    @property
    def runs(self) -> bool:
        return self.status != "current"


def companion(table: TableName) -> TableName:
    """Return the repeatable files' table: beside the tracking table, `<name>_repeatable`."""
    return TableName(table.schema, f"{table.name}_repeatable")


def read_recorded(conn: psycopg.Connection, table: TableName) -> dict[str, tuple[str, object]]:
    """Return {name: (checksum, applied_at)} recorded; empty when the table does not exist."""
    rep = companion(table)
    exists = conn.execute("SELECT to_regclass(%s)", (str(rep),)).fetchone()[0]
    if exists is None:
        return {}
    rows = conn.execute(sql.SQL("SELECT name, checksum, applied_at FROM {}").format(
        sql.Identifier(rep.schema, rep.name))).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def states(files: list[RepeatableFile], recorded: dict[str, tuple[str, object]],
           order: list[str]) -> list[RepeatableState]:
    """Return each file's state, in run order."""
    by_name = {f.name: f for f in files}
    out = []
    for name in order:
        f = by_name[name]
        seen = recorded.get(name)
        status = "new" if seen is None else "current" if seen[0] == f.checksum else "changed"
        out.append(RepeatableState(f, status, seen[1] if seen else None))
    return out


def ensure_sql(conn: psycopg.Connection, table: TableName) -> list[str]:
    """Return the SQL that creates the companion table when it is missing."""
    name = tracking.quoted(conn, companion(table))
    return [f"CREATE TABLE IF NOT EXISTS {name} (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, "
            f"applied_at TIMESTAMP NOT NULL DEFAULT NOW(), execution_ms INTEGER, "
            f"applied_by TEXT)"]


def record_sql(conn: psycopg.Connection, table: TableName, name: str, checksum: str, by: str,
               execution_ms: int | None = None) -> str:
    """Return the SQL recording a repeatable file run (in its own transaction when it has one)."""
    esc, enc = pq.Escaping(conn.pgconn), conn.info.encoding

    def literal(text: str) -> str:
        return esc.escape_literal(text.encode(enc)).decode(enc)

    ms = ("round(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer"
          if execution_ms is None else str(int(execution_ms)))
    return (f"INSERT INTO {tracking.quoted(conn, companion(table))} AS r (name, checksum, "
            f"applied_at, execution_ms, applied_by) VALUES ({literal(name)}, {literal(checksum)}, "
            f"now(), {ms}, {literal(by)}) ON CONFLICT (name) DO UPDATE SET "
            f"checksum = EXCLUDED.checksum, applied_at = EXCLUDED.applied_at, "
            f"execution_ms = EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by")
