"""Plan and apply migrations: tracking table, advisory lock, one transaction per file, drift, repair."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg
from psycopg import pq

from . import session, tracking
from .dberrors import locate
from .ddllock import DdlLockPolicy, DdlLocks, RetryNotice, SessionLockTimeout
from .errors import ConnectError, DriftError, MigrationFailed, MigrationFileError
from .locking import advisory_lock
from .migrations import (
    Migration,
    MigrationFile,
    discover,
    file_checksum,
    load,
    read_text,
)
from .settings import Settings, TableName
from .sqltext import LineMap, Statement, split_statements
from .wire import failing_statement, run_script

DEFAULT_LOCK_TIMEOUT = 60.0


def connect(conninfo: str, read_only: bool = False) -> psycopg.Connection:
    """Open the one autocommit connection a run uses; a failure is one clear line."""
    # psycopg reports cleanup trouble after a failure through logging; the failure itself is ours
    # to report, in one place.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name="kgmigrate",
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise ConnectError(f"cannot connect to the database: {reason}") from None
    session.configure(conn, read_only)
    return conn


@dataclass
class Plan:
    """What `up` would do, read without writing anything."""

    state: tracking.DbState
    files: list[MigrationFile]
    baseline: Path | None
    pending: list[Migration]
    drifted: list[int]
    missing_files: list[int]
    target: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def current_version(self) -> int | None:
        return self.state.current_version


def _drift(state: tracking.DbState, files: list[MigrationFile]) -> tuple[list[int], dict[int, str]]:
    """Return drifted versions and the checksums of applied files that have none recorded yet."""
    drifted, unfilled = [], {}
    for mf in files:
        row = state.applied.get(mf.version)
        if row is None:
            continue
        current = file_checksum(mf.path)
        if row.checksum is None:
            unfilled[mf.version] = current
        elif row.checksum != current:
            drifted.append(mf.version)
    return drifted, unfilled


def make_plan(conn: psycopg.Connection, settings: Settings, target: int | None = None,
              parse: bool = True,
              on_pending: Callable[[list[MigrationFile]], None] | None = None) -> Plan:
    """Read the database and the directory; parse every pending file (syntax errors stop here).

    `on_pending` learns the pending files before they are parsed (`up` starts its linter there).
    """
    files = discover(settings.migrations_dir)
    state = tracking.read_state(conn, settings.table)
    pending_files = [mf for mf in files if mf.version not in state.applied
                     and (target is None or mf.version <= target)]
    if on_pending is not None:
        on_pending(pending_files)
    pending = [load(mf) for mf in pending_files] if parse else [
        Migration(mf.version, mf.name, mf.path, "", True, [], LineMap("")) for mf in pending_files]
    baseline = settings.baseline_path
    use_baseline = (state.fresh and not settings.no_baseline and baseline.is_file())
    if use_baseline and parse:
        _parse_baseline(baseline)
    drifted, _ = _drift(state, files)
    on_disk = {mf.version for mf in files}
    plan = Plan(state=state, files=files, baseline=baseline if use_baseline else None,
                pending=pending, drifted=drifted,
                missing_files=[v for v in state.applied if v not in on_disk], target=target)
    current = state.current_version
    for m in pending:
        if current is not None and m.version < current:
            plan.warnings.append(f"migration {m.version:03d} ({m.name}) is numbered below the "
                                 f"current version {current:03d}; it will be applied in order")
    return plan


def _parse_baseline(path: Path) -> tuple[list[Statement], LineMap]:
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = LineMap(text)
    return split_statements(text, path, lines), lines


class Reporter:
    """Callbacks through which `apply` tells its caller what happens; the default says nothing."""

    def warning(self, message: str) -> None: ...
    def baseline_applied(self, path: Path, ms: int) -> None: ...
    def checksums_filled(self, versions: list[int]) -> None: ...
    def migration_started(self, mig: Migration) -> None: ...
    def migration_applied(self, mig: Migration, ms: int) -> None: ...
    def notice(self, label: str, diag: psycopg.errors.Diagnostic) -> None: ...
    def lock_retry(self, notice: RetryNotice) -> None: ...


@dataclass
class ApplyResult:
    """What `apply` did: the baseline, each file with its time in ms, the version reached."""

    baseline_applied: bool
    applied: list[tuple[Migration, int]]
    current_version: int | None


def _lost(conn: psycopg.Connection, exc: psycopg.Error, path: Path) -> None:
    """Raise ConnectError when the connection died: the outcome of `path` is then unknown."""
    if conn.broken or conn.closed:
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise ConnectError(f"lost the connection while applying {path}: {reason}; run "
                           f"`kgmigrate status` to see whether it was recorded") from None


def _run_statements(conn: psycopg.Connection, path: Path, lines: LineMap,
                    statements: list[Statement], ddl: DdlLocks, what: str) -> None:
    """Run each statement on its own; one that gives up on a lock is retried alone."""
    bound = SessionLockTimeout(conn, ddl.policy)
    for i, stmt in enumerate(statements):
        try:
            bound.before(stmt)
            ddl.attempt(f"{what} statement {i + 1} (line {stmt.line})",
                        partial(conn.execute, stmt.sql))
        except psycopg.Error as exc:
            _lost(conn, exc, path)
            raise _Failed(locate(exc, path, lines, stmt, 0, statements), i,
                          exc.sqlstate) from exc
        bound.after(stmt)


class _Failed(Exception):
    """A statement failed: the located message and the statement's index in its file."""

    def __init__(self, message: str, index: int, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message, self.index, self.sqlstate = message, index, sqlstate


def _run_transaction(conn: psycopg.Connection, path: Path, lines: LineMap,
                     statements: list[Statement], tail: list[str], head: list[str] = ()) -> None:
    """Run the `head` SQL, the statements, then the `tail` SQL, in one transaction sent as one query."""
    script, starts = "BEGIN;\n" + "".join(f"{sql};\n" for sql in head), []
    for stmt in statements:
        starts.append(len(script))
        script += stmt.sql + "\n;\n"  # the newline ends a trailing -- comment
    script += "".join(f"{sql};\n" for sql in tail) + "COMMIT"
    try:
        outcome = run_script(conn, script)
    except psycopg.Error as exc:
        _lost(conn, exc, path)
        raise
    if outcome.error is None:
        return
    if conn.info.transaction_status == pq.TransactionStatus.INERROR:
        conn.execute("ROLLBACK")
    # The server's position (in the script) names the statement even when it rejected the whole
    # script before running any of it; else the first results answer our BEGIN and `head`.
    index = failing_statement(outcome, starts, [len(s.sql) for s in statements],
                              opening=1 + len(head))
    if 0 <= index < len(statements):
        stmt, shift = statements[index], starts[index]
    else:  # at COMMIT (a deferred constraint) or the tracking row: point at the file's end
        end = len(lines.text.rstrip())
        stmt, shift = Statement("COMMIT", end, lines.line_of(end), "COMMIT"), len(script)
    raise _Failed(locate(outcome.error, path, lines, stmt, shift, statements), index,
                  outcome.error.sqlstate)


# After the file's own work, its session is reset in its transaction; the notices of our own
# statements that follow are not the file's to show.
_OWN_QUIET = "SET LOCAL client_min_messages = warning"


def _apply_one(conn: psycopg.Connection, mig: Migration, by: str, table: TableName,
               ddl: DdlLocks) -> int:
    """Apply one file with its tracking row; return its run time in ms."""
    t0 = time.perf_counter()
    what = f"Migration {mig.version:03d} ({mig.name})"
    if mig.transactional:
        tail = [*session.reset_sql(conn), _OWN_QUIET,
                tracking.record_sql(conn, table, mig.version, mig.name, mig.checksum, by)]
        try:
            ddl.attempt(what, lambda: _run_transaction(conn, mig.path, mig.lines, mig.statements,
                                                       tail, ddl.transaction_head()))
        except _Failed as exc:
            raise MigrationFailed(f"{exc.message}\n{ddl.explain(exc)}{what} was "
                                  f"rolled back: nothing from it was applied.") from None
        return round((time.perf_counter() - t0) * 1000)
    try:
        _run_statements(conn, mig.path, mig.lines, mig.statements, ddl, what)
    except _Failed as exc:
        total = len(mig.statements)
        ran = (f"statements 1-{exc.index} of {total} already ran and stay applied"
               if exc.index else f"no statement of {total} ran")
        raise MigrationFailed(
            f"{exc.message}\n{ddl.explain(exc)}{what} runs without a transaction: "
            f"{ran}; it is not recorded. Fix the file (make the statements idempotent, "
            f"e.g. IF NOT EXISTS) and run again.") from None
    ms = round((time.perf_counter() - t0) * 1000)
    session.reset(conn)
    tracking.record(conn, table, mig.version, mig.name, mig.checksum, ms, by)
    return ms


def check_drift(drifted: list[int], files: list[MigrationFile]) -> None:
    """Raise DriftError naming the drifted files and the `repair` command that accepts them."""
    if not drifted:
        return
    names = {mf.version: mf.path.name for mf in files}
    listed = ", ".join(names.get(v, str(v)) for v in drifted)
    raise DriftError(f"applied migration(s) changed since they were applied: {listed}. "
                     f"Restore the files, or accept the edits with `kgmigrate repair "
                     f"{' '.join(str(v) for v in drifted)}`")


@contextmanager
def _notices_to(conn: psycopg.Connection, rep: Reporter) -> Iterator[list[str]]:
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


def apply(conn: psycopg.Connection, settings: Settings, plan: Plan,
          lock_timeout: float = DEFAULT_LOCK_TIMEOUT, reporter: Reporter | None = None,
          ddl_policy: DdlLockPolicy | None = None) -> ApplyResult:
    """Take the lock, re-read the state, then apply the baseline and every pending file in order.

    `lock_timeout` bounds the wait for the runner lock; `ddl_policy` the wait of each statement
    for the locks it needs, and how often a file that gave up on one is retried.
    """
    rep = reporter or Reporter()
    by, table = tracking.applied_by(), settings.table
    parsed = {m.version: m for m in plan.pending}
    baseline_done = False
    applied: list[tuple[Migration, int]] = []
    with advisory_lock(conn, lock_timeout), _notices_to(conn, rep) as running:
        state = tracking.read_state(conn, table)  # another runner may have finished meanwhile
        if state.fresh and plan.baseline is not None:
            statements, lines = _parse_baseline(plan.baseline)
            t0 = time.perf_counter()
            running.append(f"Baseline {plan.baseline.name}")
            try:
                _run_transaction(conn, plan.baseline, lines, statements,
                                 [*session.reset_sql(conn), _OWN_QUIET,
                                  *tracking.ensure_sql(conn, table)])
            except _Failed as exc:
                raise MigrationFailed(f"{exc.message}\nThe baseline was rolled back: the database "
                                      f"is as it was.") from None
            finally:
                running.clear()
            baseline_done = True
            rep.baseline_applied(plan.baseline, round((time.perf_counter() - t0) * 1000))
        else:
            with conn.transaction():
                tracking.ensure_table(conn, table, state)
        state = tracking.read_state(conn, table)
        drifted, unfilled = _drift(state, plan.files)
        check_drift(drifted, plan.files)
        if unfilled:
            with conn.transaction():
                for version, checksum in unfilled.items():
                    tracking.set_checksum(conn, table, version, checksum)
            rep.checksums_filled(sorted(unfilled))
        todo = [mf for mf in plan.files if mf.version not in state.applied
                and (plan.target is None or mf.version <= plan.target)]
        ddl = DdlLocks(conn, ddl_policy or DdlLockPolicy(), on_retry=rep.lock_retry)
        try:
            for mf in todo:
                mig = parsed.get(mf.version) or load(mf)
                rep.migration_started(mig)
                running.append(f"Migration {mig.version:03d} - {mig.name}")
                try:
                    ms = _apply_one(conn, mig, by, table, ddl)
                finally:
                    running.clear()
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
            chosen, _ = _drift(state, list(files.values()))
        with conn.transaction():
            tracking.ensure_table(conn, table, state)
            for v in chosen:
                tracking.set_checksum(conn, table, v, file_checksum(files[v].path))
    return sorted(chosen)
