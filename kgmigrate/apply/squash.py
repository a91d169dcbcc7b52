"""`squash`: replay the baseline and migrations 001..N on a scratch database and write what they
built (schema, and the rows they seeded) into the baseline file, headed by the files it replaces."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ..durable import atomic_write, source_mode
from ..errors import ConfigError, MigrationFailed, ToolError
from ..files.baseline import Baseline, SquashedFile, baseline_header, read_baseline
from ..files.migrations import MigrationFile, discover
from ..files.psqlmeta import is_dump_guard
from ..files.sqltext import split_statements
from ..files.versions import version_text
from ..postgres.clientenv import client_target, scrub
from ..postgres.programs import find_client
from ..postgres.scratch import scratch_database
from ..settings import Settings, TableName
from . import tracking
from .plan import make_plan
from .progress import Reporter
from .session import connect
from .up import apply

# Rows go in as INSERTs (kgmigrate runs no COPY FROM STDIN), many to a statement.
ROWS_PER_INSERT = 1000


@dataclass
class SquashResult:
    """What `squash` wrote, and which files the baseline now stands for."""

    path: Path
    through: int
    squashed: list[SquashedFile]
    replayed: int  # migration files run on the scratch database after the old baseline
    seeded: list[str]  # tables whose rows the baseline carries
    deletable: list[Path]  # migration and down files the baseline replaces
    seconds: float


def check_through(through: int, files: list[MigrationFile], old: Baseline | None) -> None:
    """Refuse a squash point that goes backwards or names no migration file."""
    done = old.squashed_through if old is not None else None
    if done is not None and through < done:
        raise ConfigError(f"the baseline is already squashed through {version_text(done)}; "
                          f"squash through {version_text(done)} or later")
    if through != done and through not in {mf.version for mf in files}:
        highest = max((mf.version for mf in files), default=None)
        raise ConfigError(f"no migration file numbered {version_text(through)} to squash through"
                          + (f" (the highest is {version_text(highest)})" if highest else ""))


def seeded_tables(conn: psycopg.Connection, table: TableName) -> list[str]:
    """Return the tables (but the tracking table) that hold rows, schema-qualified."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND NOT (n.nspname = %s AND c.relname = %s) "
        "ORDER BY 1, 2", (table.schema, table.name)).fetchall()
    out = []
    for schema, name in tables:
        query = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(schema, name))
        if conn.execute(query).fetchone()[0]:
            out.append(str(TableName(schema, name)))
    return out


def _pattern(table: TableName) -> str:
    """Return pg_dump's pattern matching exactly this table (quoted: no wildcards, case kept)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (table.schema, table.name))


def _without_dump_guards(dump: str) -> str:
    r"""Drop pg_dump's `\restrict KEY` (before the first statement) and `\unrestrict KEY` (last
    line): a random key per dump would make every squash differ."""
    lines = dump.split("\n")
    first = next((i for i, ln in enumerate(lines) if ln and not ln.startswith("--")), None)
    if first is not None and is_dump_guard(lines[first]):
        del lines[first]
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
    if last is not None and lines[last].startswith("\\unrestrict") and is_dump_guard(lines[last]):
        del lines[last]
    return "\n".join(lines)


def dump_baseline(conninfo: str, server_major: int, table: TableName) -> str:
    """Return pg_dump's plain SQL of the database: schema and rows, not the tracking table.

    One dump keeps pg_dump's order: rows load before indexes, constraints and triggers are made,
    so no trigger fires on them and foreign keys never see half the data.
    """
    pg_dump, _ = find_client("pg_dump", server_major)
    with client_target(conninfo, "kgmigrate squash") as (target, env):
        argv = [str(pg_dump), "--no-password", "--no-owner", "--no-tablespaces", "--encoding=UTF8",
                "--column-inserts", f"--rows-per-insert={ROWS_PER_INSERT}",
                f"--exclude-table={_pattern(table)}", *target]
        proc = subprocess.run(argv, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        reason = scrub(proc.stderr.decode("utf-8", "replace").strip(), conninfo)
        raise ToolError(f"pg_dump failed (exit {proc.returncode}) on the scratch database: "
                        f"{reason or 'no message'}")
    return _without_dump_guards(proc.stdout.decode("utf-8"))


def _replay(settings: Settings, url: str, through: int,
            reporter: Reporter | None) -> tuple[list[SquashedFile], int, list[str], int]:
    """Build 001..N on the scratch database at `url`: the baseline, then the files."""
    replay = dataclasses.replace(settings, database_url=url, no_baseline=False)
    with connect(url) as conn:
        plan = make_plan(conn, replay, target=through)
        try:
            result = apply(conn, replay, plan, reporter=reporter)
        except MigrationFailed as exc:
            raise MigrationFailed(f"{exc}\nThat was on the scratch database: "
                                  f"{settings.baseline_path} is unchanged.") from None
        rows = tracking.read_state(conn, settings.table).applied
        seeded = seeded_tables(conn, settings.table)
        major = conn.info.server_version // 10000
    unknown = [r.version for r in rows.values() if r.checksum is None]
    if unknown:
        raise ConfigError(f"version(s) {', '.join(map(version_text, unknown))} have neither a "
                          f"file nor a checksum in the baseline; restore their files first")
    squashed = [SquashedFile(r.version, r.name, r.checksum)
                for v, r in sorted(rows.items()) if v <= through]
    return squashed, len(result.applied), seeded, major


def squash(settings: Settings, through: int, scratch_url: str | None = None,
           reporter: Reporter | None = None) -> SquashResult:
    """Rewrite the baseline as the state after 001..`through`, built on a scratch database."""
    t0 = time.perf_counter()
    files = discover(settings.migrations_dir)
    path = settings.baseline_path
    check_through(through, files, read_baseline(path))
    with scratch_database(scratch_url) as url:
        squashed, replayed, seeded, major = _replay(settings, url, through, reporter)
        dump = dump_baseline(url, major, settings.table)
    text = baseline_header(through, squashed) + "\n" + dump
    split_statements(text, path)  # what `up` will run must parse: refuse before writing
    try:
        atomic_write(path, text.encode("utf-8"), source_mode(path))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    deletable = [p for mf in files if mf.version <= through for p in (mf.path, mf.down) if p]
    return SquashResult(path, through, squashed, replayed, seeded, deletable,
                        time.perf_counter() - t0)
