"""`down`: choose the applied migrations to reverse, check the whole plan, then run each down
file in its own transaction together with the deletion of its tracking row, last applied first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from ..errors import MigrationFailed, MigrationFileError
from ..files.baseline import Baseline, read_baseline
from ..files.graph import Graph, provided_by, read_graph
from ..files.migrations import Migration, MigrationFile, load
from ..files.versions import version_text, versions_text
from ..settings import Settings
from . import tracking
from .drift import check_drift, drift, settle
from .locks.ddl import DdlLockPolicy, DdlLocks
from .locks.runner import advisory_lock
from .progress import Reporter
from .runfile import SqlFile, notices_to, run_labelled


@dataclass
class DownPlan:
    """What `down` would do, read without writing anything."""

    state: tracking.DbState
    files: list[MigrationFile]
    chosen: list[MigrationFile]  # newest first
    parsed: list[Migration]  # their down files, read, checksummed and parsed

    @property
    def current_version(self) -> int | None:
        return self.state.current_version


def choose(state: tracking.DbState, files: list[MigrationFile], steps: int | None,
           to: int | None) -> list[int]:
    """Return the applied versions to reverse, last applied first: the `steps` last applied, or
    all above `to`.

    `to` 0 means everything reversible: the first applied version (the baseline) is left out
    when it has no down file, as it never has one.
    """
    applied = state.in_applied_order()[::-1]
    if to is None:
        return applied[:steps or 1]
    chosen = [v for v in applied if v > to]
    if to == 0 and chosen:
        downs = {mf.version for mf in files if mf.down is not None}
        if chosen[-1] not in downs:
            chosen.pop()
    return chosen


def check_reversible(chosen: list[int], files: list[MigrationFile]) -> None:
    """Refuse the whole plan, naming every version without a down file (or without any file)."""
    by_version = {mf.version: mf for mf in files}
    no_file = [v for v in chosen if v not in by_version]
    no_down = [v for v in chosen if v in by_version and by_version[v].down is None]
    problems = []
    if no_down:
        problems.append("no down file for " + ", ".join(
            f"{by_version[v].path.name} (add {by_version[v].path.name[:-4]}.down.sql)"
            for v in no_down))
    if no_file:
        problems.append("no file at all for applied version(s) " + versions_text(no_file))
    if problems:
        raise MigrationFileError("cannot reverse: " + "; ".join(problems)
                                 + ". Nothing was reversed.")


def check_required(chosen: list[int], state: tracking.DbState, graph: Graph) -> None:
    """Refuse to reverse a file that an applied file staying applied `requires`, naming both."""
    going = set(chosen)
    problems = []
    for v in chosen:
        for src in graph.required_by(v):
            if src in going or (isinstance(src, int) and src not in state.applied):
                continue
            line = graph.lines[(src, v)]
            problems.append(f"{graph.path_of(v).name} is required by applied "
                            f"{graph.path_of(src).name} (line {line})")
    if problems:
        raise MigrationFileError("cannot reverse: " + "; ".join(problems) + ". Reverse those "
                                 "too (e.g. --steps or --to), or nothing. Nothing was reversed.")


def check_not_squashed(chosen: list[int], squash: Baseline | None) -> None:
    """Refuse the whole plan when it reaches into the range a squashed baseline replaced."""
    inside = [v for v in chosen if squash is not None and squash.covers(v)]
    if not inside:
        return
    through = version_text(squash.squashed_through)
    raise MigrationFileError(
        f"cannot reverse {versions_text(sorted(inside))}: squashed into {squash.path.name} "
        f"(`-- kgmigrate:squashed-through {squash.squashed_through}`), which has no down files; "
        f"`kgmigrate down --to {squash.squashed_through}` reverses everything above {through}. "
        f"To go back further, restore a snapshot taken before (`kgmigrate restore --list`). "
        f"Nothing was reversed.")


def make_down_plan(conn: psycopg.Connection, settings: Settings, steps: int | None = None,
                   to: int | None = None,
                   on_chosen: Callable[[list[MigrationFile]], None] | None = None) -> DownPlan:
    """Choose what to reverse and check it as a whole: down files present, no drift, all parse.

    `on_chosen` learns the chosen files before their down files are parsed (lint starts there).
    """
    squash = read_baseline(settings.baseline_path)
    graph = read_graph(settings, provided_by(squash))
    files = graph.files
    state = tracking.read_state(conn, settings.table)
    if to == 0 and squash is not None and squash.squashed_through is not None:
        to = squash.squashed_through  # "all but the baseline": the squashed range is the baseline
    versions = choose(state, files, steps, to)
    check_not_squashed(versions, squash)
    check_reversible(versions, files)
    check_required(versions, state, graph)
    by_version = {mf.version: mf for mf in files}
    chosen = [by_version[v] for v in versions]
    found = drift(state, files)
    check_drift(found.drifted, files, found.down_drifted)
    if on_chosen is not None:
        on_chosen(chosen)
    return DownPlan(state, files, chosen, [load(mf, down=True) for mf in chosen])


def down_file(conn: psycopg.Connection, mig: Migration, table: tracking.TableName) -> SqlFile:
    """Return the down file of `mig` ready to run with the deletion of its tracking row."""
    return SqlFile(f"Reversal of migration {version_text(mig.version)} ({mig.name})", mig.path,
                   mig.lines, mig.statements, mig.transactional,
                   lambda _ms: tracking.delete_sql(conn, table, mig.version),
                   unrecorded="it stays recorded as applied")


@dataclass
class ReverseResult:
    """What `reverse` did: each down file with its time in ms, and the version reached."""

    reversed: list[tuple[Migration, int]]
    skipped: list[int]  # reversed by another runner meanwhile
    current_version: int | None


def _now_applied(state: tracking.DbState) -> str:
    return versions_text(sorted(state.applied)) or "none"


def reverse(conn: psycopg.Connection, settings: Settings, plan: DownPlan,
            lock_timeout: float, reporter: Reporter | None = None,
            ddl_policy: DdlLockPolicy | None = None) -> ReverseResult:
    """Take the lock, check the plan again against the state read under it, reverse newest first.

    A version another runner reversed meanwhile is skipped; one applied meanwhile above the plan
    stops everything before it starts (the plan would reverse from the middle).
    """
    rep = reporter or Reporter()
    table = settings.table
    done: list[tuple[Migration, int]] = []
    with advisory_lock(conn, lock_timeout), notices_to(conn, rep) as running:
        state = settle(conn, table, plan.files, rep, down_too=True)
        newer = [v for v in state.applied if v not in plan.state.applied]
        if newer:
            raise MigrationFailed(
                f"the database changed since the plan: version(s) {versions_text(sorted(newer))} "
                f"were applied meanwhile by another runner; nothing was reversed. Run `kgmigrate "
                f"down` again to see the new plan.")
        # The checksums recorded under the lock must match the files about to run.
        for mig in plan.parsed:
            row = state.applied.get(mig.version)
            if row is not None and row.down_checksum not in (None, mig.checksum):
                check_drift([], plan.files, [mig.version])
        skipped = [m.version for m in plan.parsed if m.version not in state.applied]
        ddl = DdlLocks(conn, ddl_policy or DdlLockPolicy(), on_retry=rep.lock_retry)
        try:
            for mig in plan.parsed:
                if mig.version not in state.applied:
                    continue
                rep.migration_started(mig)
                try:
                    ms = run_labelled(conn, running, f"Reversal of migration "
                                      f"{version_text(mig.version)} - {mig.name}",
                                      down_file(conn, mig, table), ddl)
                except MigrationFailed as exc:
                    now = tracking.read_state(conn, table)
                    raise MigrationFailed(f"{exc}\nNow applied: {_now_applied(now)}.") from None
                done.append((mig, ms))
                rep.migration_reversed(mig, ms)
        finally:
            ddl.close()
        current = tracking.read_state(conn, table).current_version
    return ReverseResult(done, skipped, current)

