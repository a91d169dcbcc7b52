"""The session-level advisory lock that serialises runners on one database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from ...errors import LockTimeout
from ..session import roll_back

# A fixed 64-bit key, the same for every runner of every version.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"kgmigrate:schema_migrations").digest()[:8], "big",
                          signed=True)
# How long a run waits for the lock unless told otherwise.
DEFAULT_TIMEOUT_S = 60.0


def lock_holder(conn: psycopg.Connection, key: int = LOCK_KEY) -> str:
    """Describe the session holding the lock: pid, application, client, since when."""
    k = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT l.pid, a.application_name, a.client_addr::text, a.backend_start "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
        "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())", (k >> 32, k & 0xFFFFFFFF)).fetchone()
    if not row:
        return "another session (it has since let go)"
    pid, app, addr, since = row
    who = f"pid {pid}"
    if app:
        who += f" ({app}"
        who += f" from {addr})" if addr else ")"
    if since:
        who += f", connected since {since:%Y-%m-%d %H:%M:%S}"
    return who


@contextmanager
def advisory_lock(conn: psycopg.Connection, timeout_s: float,
                  key: int = LOCK_KEY) -> Iterator[None]:
    """Hold the migration lock for the block; wait at most `timeout_s` seconds for it.

    Session-level: it dies with the connection, so a killed runner never leaves it behind.
    """
    if timeout_s <= 0:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        if not got:
            raise LockTimeout(f"the migration lock is held by {lock_holder(conn, key)}")
    else:
        try:
            # SET LOCAL bounds only this wait; the session lock outlives the transaction, and the
            # migrations keep whatever lock_timeout the role or database configures.
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)",
                              (f"{max(int(timeout_s * 1000), 1)}ms",))
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except errors.LockNotAvailable:
            raise LockTimeout(f"timed out after {timeout_s:g} s waiting for the migration lock, "
                              f"held by {lock_holder(conn, key)}") from None
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            roll_back(conn)  # an interrupted query may have left its transaction aborted
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
