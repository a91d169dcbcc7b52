"""Point PostgreSQL client programs (pg_dump, pg_restore, psql) at a database without the password
on their command line, and keep it out of what they print."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ConfigError


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
