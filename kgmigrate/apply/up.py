"""Apply migrations under the runner lock: the baseline, then each pending file in its own
transaction with its tracking row (runfile.py); drift checked again under the lock; repair."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg

from ..errors import MigrationFailed, MigrationFileError
from ..files.migrations import Migration, MigrationFile, discover, file_checksum, load
from ..files.sourcemap import LineMap
from ..files.sqltext import Statement
from ..files.versions import version_text
from ..settings import Settings, TableName
from . import session, tracking
from .locks.ddl import DdlLockPolicy, DdlLocks
from .locks.runner import advisory_lock
from .plan import Plan, check_drift, drift, parse_baseline, pending_files
from .progress import Reporter
from .runfile import OWN_QUIET, SqlFile, StatementFailed, run_file, run_transaction

DEFAULT_LOCK_TIMEOUT = 60.0


@dataclass
class ApplyResult:
    """What `apply` did: the baseline, each file with its time in ms, the version reached."""

    baseline_applied: bool
    applied: list[tuple[Migration, int]]
    current_version: int | None


@contextmanager
def notices_to(conn: psycopg.Connection, rep: Reporter) -> Iterator[list[str]]:
    """Forward the server's notices to `rep` while a file runs; yield where to name that file."""
    running: list[str] = []

    def forward(diag: psycopg.errors.Diagnostic) -> None:
        if running:
            rep.notice(running[-1], diag)

    conn.add_notice_handler(forward)
    try:
        yield running
    finally:
        conn.remove_notice_handler(forward)


def run_labelled(conn: psycopg.Connection, running: list[str], label: str, file: SqlFile,
                 ddl: DdlLocks) -> int:
    """Run `file` (runfile.run_file) with the server's notices shown under `label`."""
    running.append(label)
    try:
        return run_file(conn, file, ddl)
    finally:
        running.clear()


def _apply_baseline(conn: psycopg.Connection, path: Path, statements: list[Statement],
                    lines: LineMap, table: TableName) -> None:
    """Run the baseline and create the tracking table in one transaction."""
    try:
        run_transaction(conn, path, lines, statements,
                        [*session.reset_sql(conn), OWN_QUIET, *tracking.ensure_sql(conn, table)])
    except StatementFailed as exc:
        raise MigrationFailed(f"{exc.message}\nThe baseline was rolled back: the database is as "
                              f"it was.") from None


def migration_file(conn: psycopg.Connection, mig: Migration, table: TableName,
                   by: str, down_checksum: str | None = None) -> SqlFile:
    """Return `mig` ready to run with the row that records it (and its down file's checksum)."""
    return SqlFile(f"Migration {version_text(mig.version)} ({mig.name})", mig.path,
                   mig.lines, mig.statements, mig.transactional,
                   partial(tracking.record_sql, conn, table, mig.version, mig.name, mig.checksum,
                           by, down_checksum=down_checksum))


def settle(conn: psycopg.Connection, table: TableName, files: list[MigrationFile],
           rep: Reporter, down_too: bool = False) -> tracking.DbState:
    """Under the lock: refuse drift (of down files too with `down_too`), fill missing checksums.

    Return the state read under the lock. Checksums not recorded yet (a database the old runner
    built, a down file added after its migration ran) are adopted here.
    """
    state = tracking.read_state(conn, table)
    missing = tracking.ensure_sql(conn, table, state)
    if missing:  # an old runner's table gains kgmigrate's columns
        with conn.transaction():
            for stmt in missing:
                conn.execute(stmt)
        state = tracking.read_state(conn, table)
    found = drift(state, files)
    check_drift(found.drifted, files, found.down_drifted if down_too else ())
    if found.unfilled or found.down_unfilled:
        with conn.transaction():
            for version, checksum in found.unfilled.items():
                tracking.set_checksum(conn, table, version, checksum)
            for version, checksum in found.down_unfilled.items():
                tracking.set_checksum(conn, table, version, checksum, "down_checksum")
        rep.checksums_filled(sorted({*found.unfilled, *found.down_unfilled}))
        state = tracking.read_state(conn, table)
    return state


def apply(conn: psycopg.Connection, settings: Settings, plan: Plan,
          lock_timeout: float = DEFAULT_LOCK_TIMEOUT, reporter: Reporter | None = None,
          ddl_policy: DdlLockPolicy | None = None) -> ApplyResult:
    """Take the lock, re-read the state, then apply the baseline and every pending file in order.

    `lock_timeout` bounds the wait for the runner lock; `ddl_policy` the wait of each statement
    for the locks it needs, and how often a file that gave up on one is retried.
    """
    rep = reporter or Reporter()
    by, table = tracking.applied_by(), settings.table
    parsed = {m.version: m for m in plan.parsed or ()}
    baseline_done = False
    applied: list[tuple[Migration, int]] = []
    with advisory_lock(conn, lock_timeout), notices_to(conn, rep) as running:
        state = tracking.read_state(conn, table)  # another runner may have finished meanwhile
        if state.fresh and plan.baseline is not None:
            statements, lines = parse_baseline(plan.baseline)
            t0 = time.perf_counter()
            running.append(f"Baseline {plan.baseline.name}")
            try:
                _apply_baseline(conn, plan.baseline, statements, lines, table)
            finally:
                running.clear()
            baseline_done = True
            rep.baseline_applied(plan.baseline, round((time.perf_counter() - t0) * 1000))
        state = settle(conn, table, plan.files, rep)
        ddl = DdlLocks(conn, ddl_policy or DdlLockPolicy(), on_retry=rep.lock_retry)
        try:
            for mf in pending_files(plan.files, state, plan.target):
                mig = parsed.get(mf.version) or load(mf)
                rep.migration_started(mig)
                down = file_checksum(mf.down) if mf.down is not None else None
                ms = run_labelled(conn, running,
                                  f"Migration {version_text(mig.version)} - {mig.name}",
                                  migration_file(conn, mig, table, by, down), ddl)
                applied.append((mig, ms))
                rep.migration_applied(mig, ms)
        finally:
            ddl.close()
        current = tracking.read_state(conn, table).current_version
    return ApplyResult(baseline_done, applied, current)


def repair(conn: psycopg.Connection, settings: Settings, versions: list[int],
           lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[int]:
    """Record the current checksum of the named applied files (all drifted ones when none named)."""
    files = {mf.version: mf for mf in discover(settings.migrations_dir)}
    table = settings.table
    with advisory_lock(conn, lock_timeout):
        state = tracking.read_state(conn, table)
        if not state.has_table:
            raise MigrationFileError("nothing to repair: the database has no migrations applied")
        if versions:
            unknown = [v for v in versions if v not in state.applied]
            nofile = [v for v in versions if v in state.applied and v not in files]
            if unknown:
                raise MigrationFileError(f"not applied, nothing to repair: "
                                         f"{', '.join(map(str, unknown))}")
            if nofile:
                raise MigrationFileError(f"no file for applied version(s): "
                                         f"{', '.join(map(str, nofile))}")
            chosen = versions
        else:
            found = drift(state, list(files.values()))
            chosen = sorted({*found.drifted, *found.down_drifted, *found.down_unfilled})
        with conn.transaction():
            tracking.ensure_table(conn, table, state)
            for v in chosen:
                mf = files[v]
                tracking.set_checksum(conn, table, v, file_checksum(mf.path))
                tracking.set_checksum(conn, table, v, None if mf.down is None
                                      else file_checksum(mf.down), "down_checksum")
    return sorted(chosen)
