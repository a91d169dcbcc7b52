"""Run PostgreSQL client programs against a database without putting the password on argv."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import tracking
from .errors import ConfigError, ConnectError, SnapshotError
from .pgtools import binary_version, find_binary
from .settings import TRACKING_TABLE, TableName


def tool_target(conninfo: str, app: str) -> tuple[list[str], dict[str, str]]:
    """Return the `--dbname=` argument and the environment for a client program.

    The password moves from the conninfo into PGPASSWORD, so it never appears in a process
    listing; an empty conninfo leaves libpq to the PG* environment as it is.
    """
    env = dict(os.environ)
    env.setdefault("PGAPPNAME", app)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    if not conninfo:
        return [], env
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return [f"--dbname={make_conninfo(**params)}"], env


def scrub(text: str, conninfo: str) -> str:
    """Return `text` with the conninfo's password (if any) replaced by ***."""
    try:
        password = conninfo_to_dict(conninfo).get("password") if conninfo else None
    except psycopg.ProgrammingError:
        password = None
    return text.replace(str(password), "***") if password else text


def connect(conninfo: str) -> psycopg.Connection:
    """Open an autocommit connection; a failure is one clear line (engine stays unimported)."""
    try:
        return psycopg.connect(conninfo, autocommit=True, application_name="kgmigrate",
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise ConnectError(f"cannot connect to the database: {reason}") from None


def tool(name: str, min_major: int) -> tuple[Path, str]:
    """Return a client program at least `min_major` and its version as text."""
    path = find_binary(name, min_major)
    major, minor = binary_version(str(path))
    if path.resolve().name == "pg_wrapper":
        # Debian's Perl dispatcher costs ~40 ms a run; go straight to the program it would run.
        real = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
        if real.is_file() and binary_version(str(real))[0] == major:
            path = real
    return path, f"{major}.{minor}"


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
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise SnapshotError(f"cannot read the database {conn.info.dbname}: {reason}") from None
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
