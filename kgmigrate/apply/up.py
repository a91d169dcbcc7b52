"""Apply migrations under the runner lock: the baseline, then each pending file in its own
transaction with its tracking row (runfile.py), drift checked again under the lock (drift.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg

from ..errors import MigrationFailed
from ..files.baseline import SquashedFile
from ..files.migrations import Migration, load
from ..files.repeatable import load_repeatable
from ..files.sourcemap import LineMap
from ..files.sqltext import Statement
from ..files.versions import version_text
from ..settings import Settings, TableName
from . import repeatables as reps
from . import session, tracking
from .drift import settle
from .locks.ddl import DdlLockPolicy, DdlLocks
from .locks.runner import DEFAULT_TIMEOUT_S, advisory_lock
from .order import out_of_order, refuse
from .plan import Plan, is_fresh, parse_baseline, pending_files
from .progress import Reporter
from .runfile import (
    OWN_QUIET,
    SqlFile,
    StatementFailed,
    notices_to,
    run_labelled,
    run_transaction,
)


@dataclass
class ApplyResult:
    """What `apply` did: the baseline, each file with its time in ms, the version reached."""

    baseline_applied: bool
    applied: list[tuple[Migration, int]]
    current_version: int | None
    repeatables: list[tuple[Migration, int]] = field(default_factory=list)


def _apply_baseline(conn: psycopg.Connection, path: Path, statements: list[Statement],
                    lines: LineMap, table: TableName, squashed: Sequence[SquashedFile] = (),
                    by: str = "") -> None:
    """Run the baseline, create the tracking table and record the files it replaces, in one
    transaction."""
    records = [tracking.record_sql(conn, table, f.version, f.name, f.checksum, by, execution_ms=0)
               for f in squashed]
    try:
        run_transaction(conn, path, lines, statements,
                        [*session.reset_sql(conn), OWN_QUIET, *tracking.ensure_sql(conn, table),
                         *records])
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


def apply(conn: psycopg.Connection, settings: Settings, plan: Plan,
          lock_timeout: float = DEFAULT_TIMEOUT_S, reporter: Reporter | None = None,
          ddl_policy: DdlLockPolicy | None = None,
          allow_out_of_order: bool = False) -> ApplyResult:
    """Take the lock, re-read the state, then apply the baseline and every pending file in order.

    `lock_timeout` bounds the wait for the runner lock; `ddl_policy` the wait of each statement
    for the locks it needs, and how often a file that gave up on one is retried. Out-of-order
    files are checked again against the state read under the lock (order.py).
    """
    rep = reporter or Reporter()
    by, table = tracking.applied_by(), settings.table
    parsed = {m.version: m for m in plan.parsed or ()}
    baseline_done = False
    applied: list[tuple[Migration, int]] = []
    with advisory_lock(conn, lock_timeout), notices_to(conn, rep) as running:
        state = tracking.read_state(conn, table)  # another runner may have finished meanwhile
        if plan.baseline is not None and is_fresh(conn, state, settings):
            statements, lines = plan.baseline_parsed or parse_baseline(plan.baseline)
            t0 = time.perf_counter()
            running.append(f"Baseline {plan.baseline.name}")
            try:
                _apply_baseline(conn, plan.baseline, statements, lines, table,
                                plan.squash.squashed if plan.squash else (), by)
            finally:
                running.clear()
            baseline_done = True
            rep.baseline_applied(plan.baseline, round((time.perf_counter() - t0) * 1000))
        state = settle(conn, table, plan.files, rep)
        pending = pending_files(plan.files, state, plan.target)
        refuse(out_of_order(pending, state), pending, state, plan.graph, allow_out_of_order)
        ddl = DdlLocks(conn, ddl_policy or DdlLockPolicy(), on_retry=rep.lock_retry)
        try:
            for mf in pending:
                mig = parsed.get(mf.version) or load(mf)
                rep.migration_started(mig)
                ms = run_labelled(conn, running,
                                  f"Migration {version_text(mig.version)} - {mig.name}",
                                  migration_file(conn, mig, table, by, mf.down_checksum), ddl)
                applied.append((mig, ms))
                rep.migration_applied(mig, ms)
            rerun = _apply_repeatables(conn, plan, table, by, running, ddl, rep)
        finally:
            ddl.close()
        current = tracking.read_state(conn, table).current_version
    return ApplyResult(baseline_done, applied, current, rerun)


def _apply_repeatables(conn: psycopg.Connection, plan: Plan, table: TableName, by: str,
                       running: list[str], ddl: DdlLocks,
                       rep: Reporter) -> list[tuple[Migration, int]]:
    """Run the new and changed repeatable files in order, each with its tracking row.

    Their state is read again under the lock: another runner may have run them meanwhile.
    """
    if plan.target is not None or not plan.repeatables:
        return []
    recorded = reps.read_recorded(conn, table)
    parsed = {m.name: m for m in plan.repeatables_parsed or ()}
    done = []
    for r in plan.repeatables:
        if recorded.get(r.file.name, (None,))[0] == r.file.checksum:
            continue
        if not done:
            for stmt in reps.ensure_sql(conn, table):
                conn.execute(stmt)
        mig = parsed.get(r.file.name) or load_repeatable(r.file)
        rep.migration_started(mig)
        label = f"Repeatable {mig.name}"
        ms = run_labelled(conn, running, label, SqlFile(
            label, mig.path, mig.lines, mig.statements, mig.transactional,
            partial(reps.record_sql, conn, table, mig.name, mig.checksum, by)), ddl)
        done.append((mig, ms))
        rep.repeatable_applied(mig, ms)
    return done
