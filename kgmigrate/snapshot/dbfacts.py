"""What `snapshot`, `restore` and the snapshot offered before `up` read from the database first."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..apply import tracking
from ..errors import ConfigError, SnapshotError, one_line
from ..settings import TRACKING_TABLE, TableName


@dataclass(frozen=True)
class DbFacts:
    """What a snapshot or restore needs to know about the database first."""

    database: str
    server_major: int
    server_version: str
    schema_version: int | None
    large_objects: int


def db_facts(conn: psycopg.Connection, table: TableName = TRACKING_TABLE) -> DbFacts:
    """Read the database name, server version, schema version and large-object count.

    The schema version is unknown (None) when `table` belongs to another tool.
    """
    num = conn.info.server_version
    major = num // 10000
    version = f"{major}.{num % 10000}"
    try:
        lobs = conn.execute("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata"
                            ).fetchone()[0]
        try:
            current = tracking.read_state(conn, table).current_version
        except ConfigError:
            current = None  # a snapshot does not need to understand another tool's table
    except psycopg.Error as exc:
        raise SnapshotError(f"cannot read the database {conn.info.dbname}: {one_line(exc)}"
                            ) from None
    return DbFacts(conn.info.dbname, major, version, current, int(lobs))


def holds_data(conn: psycopg.Connection, table: TableName = TRACKING_TABLE) -> bool:
    """Tell whether any table other than the tracking table has a row."""
    tables = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_%%' AND NOT (n.nspname = %s AND c.relname = %s)",
        (table.schema, table.name)).fetchall()
    if not tables:
        return False
    if len(tables) > 500:
        return True  # no need to look further to know it is worth a snapshot
    probe = " OR ".join(f"EXISTS (SELECT 1 FROM {t})" for (t,) in tables)
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '5s'")
            return bool(conn.execute(f"SELECT {probe}").fetchone()[0])
    except psycopg.Error:
        return True  # a table we cannot read or lock: better to offer the snapshot
