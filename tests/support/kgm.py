"""Helpers for the kgmigrate tests: read the catalog, run kgmigrate or the old runner as processes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.procs import reaped

REPO = Path(__file__).resolve().parents[2]
NO_TX = "-- kgmigrate: no-transaction\n"  # the directive that runs a file outside a transaction


def latest_version(migrations_dir: Path | None = None) -> int:
    """The highest version among the project's migration files (what a fresh `up` reaches)."""
    folder = migrations_dir or REPO / "schema" / "migrations"
    return max(int(p.name.split("_", 1)[0]) for p in folder.glob("[0-9]*_*.sql"))


def tracked(conn: psycopg.Connection, table: str = "public.schema_migrations") -> list[int]:
    """Return the versions recorded in the tracking table (empty when it does not exist)."""
    if not table_exists(conn, table):
        return []
    return [r[0] for r in conn.execute(f"SELECT version FROM {table} ORDER BY 1")]


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Tell whether the relation `name` exists, straight from the catalog."""
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    """Return the column names of `table` in order."""
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", (table,))]


def user_relations(conn: psycopg.Connection) -> list[str]:
    """Return every table, index, sequence and view outside the system schemas."""
    return [r[0] for r in conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1")]


def user_schemas(conn: psycopg.Connection) -> list[str]:
    """Return the schemas besides public and the system ones."""
    return [r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema') "
        "AND nspname NOT LIKE 'pg\\_%' ORDER BY 1")]


def env(**extra: str) -> dict[str, str]:
    """Return a clean environment for a kgmigrate subprocess."""
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("KG_", "PG")) and k not in ("NO_COLOR",)}
    out.update({"NO_COLOR": "1", **extra})
    return out


def kgmigrate_argv(url: str | None, migrations_dir: Path | None, *args: str) -> list[str]:
    """Return the argv that runs kgmigrate as a separate process."""
    argv = [sys.executable, "-m", "kgmigrate"]
    if url is not None:
        argv += ["--database-url", url]
    if migrations_dir is not None:
        argv += ["--migrations-dir", str(migrations_dir)]
    return [*argv, *args]


def kgmigrate_proc(url: str | None, migrations_dir: Path | None, *args: str,
                   **popen) -> subprocess.Popen:
    """Start kgmigrate as a separate process (concurrency and kill tests)."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": REPO,
               **popen}
    options["env"] = options.get("env") or env()
    return subprocess.Popen(kgmigrate_argv(url, migrations_dir, *args), **options)


@contextmanager
def kgmigrate_running(url: str | None, migrations_dir: Path | None, *args: str,
                      **popen) -> Iterator[subprocess.Popen]:
    """Start kgmigrate as a process for the block; it is killed if still running after it."""
    with reaped(kgmigrate_proc(url, migrations_dir, *args, **popen)) as proc:
        yield proc


def run_kgmigrate(url: str | None, migrations_dir: Path | None, *args: str,
                  environ: dict[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """Run kgmigrate as a process to completion (for exit codes and stderr exactly as a user sees)."""
    return subprocess.run(kgmigrate_argv(url, migrations_dir, *args), capture_output=True,
                          text=True, check=False, cwd=REPO, env=environ or env(),
                          timeout=timeout)


def old_runner(url: str, schema_dir: Path) -> None:
    """Build a database the way the old bash runner did: psql -v ON_ERROR_STOP=1 -f, file by file.

    The baseline first (it creates schema_migrations with version/name/applied_at only), then
    every migration whose version is not yet recorded; each file records itself.
    """
    from kgmigrate.postgres.programs import find_binary

    psql = str(find_binary("psql"))

    def run(*args: str) -> str:
        proc = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args],
                              capture_output=True, text=True, check=True)
        return proc.stdout

    run("-f", str(schema_dir / "00_baseline.sql"))
    for path in sorted((schema_dir / "migrations").glob("*.sql")):
        if path.name.endswith(".down.sql"):  # the old runner knew no reversals
            continue
        version = int(path.name.split("_", 1)[0])
        done = run("-tAc", f"SELECT 1 FROM public.schema_migrations WHERE version = {version}")
        if done.strip() != "1":
            run("-f", str(path))


def schema_dump(url: str) -> list[str]:
    """Return `pg_dump --schema-only` of the database as its sorted blocks (one object's
    statement or header each), psql's \\restrict lines (a random key per dump) left out: equal
    schemas give equal lists whatever order their objects were created in."""
    from kgmigrate.postgres.programs import find_binary

    out = subprocess.run([str(find_binary("pg_dump")), "--schema-only", "--no-owner", "-d", url],
                         capture_output=True, text=True, check=True).stdout
    kept = "\n".join(line for line in out.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))
    return sorted(block.strip() for block in kept.split("\n\n") if block.strip())


def runner_sleeping(conn: psycopg.Connection) -> bool:
    """Tell whether a kgmigrate runner is inside a pg_sleep (the moment kill tests strike)."""
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND application_name = 'kgmigrate' AND query LIKE '%pg_sleep%'"
                        ).fetchone()[0] == 1


class AnswerAfter(io.BytesIO):
    """stdin whose answer is read only after `meanwhile` ran: what happens while a prompt waits."""

    def __init__(self, answer: bytes, meanwhile: Callable[[], None]) -> None:
        super().__init__(answer)
        self._meanwhile = meanwhile

    def _reading(self, size: int | None) -> None:
        if size != 0 and self._meanwhile is not None:
            self._meanwhile, meanwhile = None, self._meanwhile
            meanwhile()

    def read(self, size: int | None = -1) -> bytes:
        self._reading(size)
        return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        self._reading(size)
        return super().read1(size)
