"""The connection pool (psycopg_pool), opened lazily per process, with short timeouts."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from kgmigrate.settings import resolve_database_url

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be reached right now."""

    code = "database_unavailable"
    retry_after = 5  # seconds: the pool keeps reconnecting behind


class SchemaMissing(DatabaseUnavailable):
    """The database has no kg_api.embedding_config yet."""

    def __init__(self) -> None:
        super().__init__("the database has no kg_api.embedding_config table: apply the "
                         "migrations first (kgmigrate up)")


class Database:
    """A lazily opened pool; safe across fork (a child opens its own)."""

    DOWN_WAIT = 0.5  # seconds a request waits for a connection while the database is down

    def __init__(self, url: str | None, connect_timeout: float = 2, pool_timeout: float = 3.0,
                 statement_timeout_ms: int = 3000) -> None:
        self._configured = url
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._pool: ConnectionPool | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.down_since: float | None = None  # set while the database is known to be down

    @property
    def conninfo(self) -> str:
        """The conninfo in use (may hold a password: never log it)."""
        return resolve_database_url(self._configured)

    def connect_kwargs(self) -> dict:
        """Keyword arguments for psycopg.connect (timeouts, autocommit)."""
        return {"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout)),
                "application_name": "kgserve",
                "options": f"-c statement_timeout={int(self.statement_timeout_ms)}",
                # A server that vanishes from the network (no RST) is noticed in ~10 s, not hours.
                "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                "keepalives_count": 3, "tcp_user_timeout": 10_000}

    def pool(self) -> ConnectionPool:
        """Return this process's pool, opening it on first use (never at import)."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A pool inherited through fork shares sockets with the parent: leave it alone.
                self._pool = ConnectionPool(
                    self.conninfo, min_size=1, max_size=4, open=False, name="kgserve",
                    kwargs={**self.connect_kwargs(), "row_factory": dict_row},
                    check=ConnectionPool.check_connection, reconnect_timeout=30,
                    reconnect_failed=lambda pool: log.warning("database still unreachable"))
                self._pool.open(wait=False)
                self._pid = os.getpid()
            return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """Lend a pooled autocommit connection; DatabaseUnavailable when none comes in time."""
        wait = timeout or self.pool_timeout
        if self.down_since is not None:
            wait = min(wait, self.DOWN_WAIT)  # known down: answer fast, the pool retries behind
        try:
            with self.pool().connection(timeout=wait) as conn:
                yield conn
        except psycopg.errors.UndefinedTable:
            raise SchemaMissing() from None
        except PoolTimeout:
            self._mark_down()
            raise DatabaseUnavailable("the database is unavailable (no connection within "
                                      f"{wait:g} s)") from None
        except psycopg.OperationalError as exc:
            self._mark_down()
            log.warning("database error: %s", " ".join(str(exc).split()))
            raise DatabaseUnavailable("the database is unavailable") from None
        if self.down_since is not None:
            log.info("database reachable again")
            self.down_since = None

    def _mark_down(self) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("database unavailable; serving the loaded model and the last known config")

    def connect(self) -> psycopg.Connection:
        """Open a dedicated autocommit connection (the LISTEN thread's)."""
        try:
            return psycopg.connect(self.conninfo, **self.connect_kwargs(), row_factory=dict_row)
        except psycopg.OperationalError:
            raise DatabaseUnavailable("the database is unavailable") from None

    def close(self) -> None:
        """Close the pool if this process opened one."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close(timeout=2)
            self._pool = None
