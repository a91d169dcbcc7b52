"""kgmigrate's connection: opened once per run with its own settings, restored after each file."""

from __future__ import annotations

import logging

import psycopg
from psycopg import pq

from ..errors import ConnectError, one_line
from ..settings import Settings, resolve_database_url

# What DISCARD ALL does, less pg_advisory_unlock_all(): the migration lock is a session advisory
# lock that must outlive every file of the run. Each may run inside a transaction block, so a
# file's reset commits with it. RESET ALL leaves SET ROLE alone; SESSION AUTHORIZATION resets it.
RESET = [
    "SET SESSION AUTHORIZATION DEFAULT",
    "RESET ALL",
    "DEALLOCATE ALL",
    "CLOSE ALL",
    "UNLISTEN *",
    "DISCARD PLANS",
    "DISCARD TEMP",
    "DISCARD SEQUENCES",
]


def own_settings(conn: psycopg.Connection, read_only: bool = False) -> list[str]:
    """Return the SET statements kgmigrate runs on each new connection."""
    out = ["SET default_transaction_read_only = on"] if read_only else []
    if conn.info.server_version >= 140000:
        # The server cancels our query as soon as we vanish (kill -9), releasing the lock at once.
        out.append("SET client_connection_check_interval = '1s'")
    return out


def configure(conn: psycopg.Connection, read_only: bool = False) -> None:
    """Apply kgmigrate's own settings to a new connection."""
    # Server-side prepared statements would not survive DEALLOCATE ALL between files.
    conn.prepare_threshold = None
    for stmt in own_settings(conn, read_only):
        conn.execute(stmt)


def connect(conninfo: str, read_only: bool = False) -> psycopg.Connection:
    """Open the one autocommit connection a run uses; a failure is one clear line."""
    # psycopg reports cleanup trouble after a failure through logging; the failure itself is ours
    # to report, in one place.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name="kgmigrate",
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ConnectError(f"cannot connect to the database: {one_line(exc)}") from None
    configure(conn, read_only)
    return conn


def open_database(settings: Settings, read_only: bool = False) -> tuple[str, psycopg.Connection]:
    """Connect to the settings' database (the local cluster started when it stands in).

    Returns the conninfo too: client programs (pg_dump, psql) and headers need it.
    """
    conninfo = resolve_database_url(settings.database_url, start_local=True)
    return conninfo, connect(conninfo, read_only=read_only)


def reset_sql(conn: psycopg.Connection) -> list[str]:
    """Return the statements that give the next file the session a new connection would have.

    `SET` and `set_config(..., false)` of one file (pg_dump output empties search_path) must not
    reach the next; kgmigrate's own settings are applied again (never read-only: only runs that
    apply files reset).
    """
    return [*RESET, *own_settings(conn)]


def reset(conn: psycopg.Connection) -> None:
    """Reset the session in one round trip (after a file that ran outside a transaction)."""
    conn.execute(";\n".join(reset_sql(conn)))


def roll_back(conn: psycopg.Connection) -> None:
    """End a transaction left open or aborted by an interrupted query, if the connection lives."""
    if not (conn.closed or conn.broken) and conn.info.transaction_status in (
            pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
        conn.execute("ROLLBACK")
