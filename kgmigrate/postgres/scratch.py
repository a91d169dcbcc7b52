"""A throwaway database for work that must not touch a real one (squash replays history there)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ConfigError, ConnectError, one_line
from ..settings import mask_url

if TYPE_CHECKING:
    from .localdb import LocalCluster

PREFIX = "kgmigrate_scratch_"


def _server(server_url: str | None) -> tuple[str, LocalCluster | None]:
    """Return where to connect to create databases, and the local cluster when this call started
    it (to stop it afterwards)."""
    if server_url:
        return server_url, None
    from .localdb import project_cluster

    cluster = project_cluster()
    started = cluster.start()
    return cluster.url("postgres"), cluster if started else None


def _maintenance(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=True, application_name="kgmigrate",
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ConnectError(f"cannot connect to the scratch server {mask_url(url)}: "
                           f"{one_line(exc)}") from None


def _drop(url: str, name: str) -> None:
    with _maintenance(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextlib.contextmanager
def scratch_database(server_url: str | None = None) -> Iterator[str]:
    """Yield the URL of a new empty database, dropped afterwards whatever happens (Ctrl-C too).

    It is created from template0 (nothing an administrator added to template1) on the server of
    `server_url` (its role needs CREATEDB), else on the project-local cluster, started for the
    block when it was not running.
    """
    url, started = _server(server_url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid scratch URL: {exc}") from None
    name = f"{PREFIX}{secrets.token_hex(6)}"
    try:
        with _maintenance(url) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                    sql.Identifier(name)))
            except psycopg.Error as exc:
                raise ConnectError(f"cannot create a scratch database on {mask_url(url)}: "
                                   f"{one_line(exc)}") from None
        try:
            yield make_conninfo(**{**params, "dbname": name})
        finally:
            _drop(url, name)
    finally:
        if started is not None:
            started.stop()
