"""What `up` would do, read without writing anything: pending files, drift, the baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MigrationFileError
from ..files.baseline import Baseline, check_clashes, read_baseline
from ..files.graph import Graph, provided_by, read_graph
from ..files.migrations import (
    Migration,
    MigrationFile,
    load,
    read_sql,
)
from ..files.repeatable import load_repeatable
from ..files.sourcemap import LineMap
from ..files.sqltext import Statement, split_statements
from ..files.versions import version_text, versions_text
from ..settings import Settings
from . import repeatables as reps
from . import tracking
from .drift import drift
from .order import OutOfOrder, out_of_order

if TYPE_CHECKING:
    import psycopg


@dataclass
class Plan:
    """What `up` would do, read without writing anything."""

    state: tracking.DbState
    files: list[MigrationFile]
    baseline: Path | None
    pending: list[MigrationFile]
    # The pending files read, checksummed and parsed; None when the plan was made without
    # parsing them (status, lint --pending).
    parsed: list[Migration] | None
    drifted: list[int]
    missing_files: list[int]
    target: int | None = None
    down_drifted: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The baseline read and parsed (statements, line map), when the plan parses and uses one.
    baseline_parsed: tuple[list[Statement], LineMap] | None = None
    graph: Graph | None = None
    out_of_order: list[OutOfOrder] = field(default_factory=list)
    # Every repeatable file in run order with its state; those that run, parsed (when parsing).
    repeatables: list[reps.RepeatableState] = field(default_factory=list)
    repeatables_parsed: list[Migration] | None = None

    @property
    def repeatables_to_run(self) -> list[reps.RepeatableState]:
        """Return the new and changed repeatable files; none with --target (a partial `up`)."""
        return [] if self.target is not None else [r for r in self.repeatables if r.runs]
    # What the baseline file replaces (files/baseline.py), whether or not this database uses it.
    squash: Baseline | None = None
    # Squashed versions this database lacks whose files are gone: `up` cannot build them.
    squashed_away: list[int] = field(default_factory=list)

    @property
    def current_version(self) -> int | None:
        return self.state.current_version


def pending_files(files: list[MigrationFile], state: tracking.DbState,
                  target: int | None = None) -> list[MigrationFile]:
    """Return the files not applied yet, up to version `target` when given."""
    return [mf for mf in files if mf.version not in state.applied
            and (target is None or mf.version <= target)]


def is_fresh(conn: psycopg.Connection, state: tracking.DbState, settings: Settings) -> bool:
    """Tell whether nothing was ever applied: no tracking table, nor the settings' baseline schema.

    A database built before kgmigrate tracked it has the schema without the table.
    """
    if state.has_table:
        return False
    return (settings.baseline_schema is None
            or not tracking.schema_exists(conn, settings.baseline_schema))


def make_plan(conn: psycopg.Connection, settings: Settings, target: int | None = None,
              parse: bool = True,
              on_pending: Callable[[list[MigrationFile]], None] | None = None) -> Plan:
    """Read the database and the directory; parse every pending file (syntax errors stop here).

    With `parse`, a database that needs squashed files that were deleted is refused here too.
    `on_pending` learns the pending files before they are parsed (`up` starts its linter there).
    """
    baseline = settings.baseline_path
    squash = read_baseline(baseline)
    graph = read_graph(settings, provided_by(squash))
    files = graph.files
    state = tracking.read_state(conn, settings.table)
    check_clashes(squash, files)
    use_baseline = (not settings.no_baseline and squash is not None
                    and is_fresh(conn, state, settings))
    if use_baseline and target is not None and squash.covers(target + 1):
        raise MigrationFileError(
            f"--target {target} lies inside what {baseline.name} builds (squashed through "
            f"{version_text(squash.squashed_through)}): a fresh database starts at "
            f"{version_text(squash.squashed_through)}. Nothing was applied.")
    on_disk = {mf.version for mf in files}
    squashed_away = [] if use_baseline else squashed_files_missing(squash, state, on_disk)
    if squashed_away and parse:
        refuse_squashed_away(squashed_away, squash, settings)
    pending = pending_files(files, state, target)
    if use_baseline and squash.versions:  # the baseline records those as applied
        pending = [mf for mf in pending if mf.version not in squash.versions]
    repeatables = reps.states(graph.repeatables, reps.read_recorded(conn, settings.table),
                              graph.repeatable_order())
    rerun = [r.file for r in repeatables if r.runs] if target is None else []
    if on_pending is not None:
        on_pending([*pending, *rerun])
    parsed = [load(mf) for mf in pending] if parse else None
    baseline_parsed = parse_baseline(baseline) if use_baseline and parse else None
    found = drift(state, files)
    plan = Plan(state=state, files=files, baseline=baseline if use_baseline else None,
                pending=pending, parsed=parsed, drifted=found.drifted,
                missing_files=[v for v in state.applied
                               if v not in on_disk and v not in graph.provided],
                target=target, down_drifted=found.down_drifted,
                baseline_parsed=baseline_parsed, squash=squash, squashed_away=squashed_away,
                graph=graph, out_of_order=out_of_order(pending, state), repeatables=repeatables,
                repeatables_parsed=[load_repeatable(f) for f in rerun] if parse else None)
    return plan


def squashed_files_missing(squash: Baseline | None, state: tracking.DbState,
                           on_disk: set[int]) -> list[int]:
    """Return the squashed versions not applied here whose files were deleted since the squash."""
    if squash is None:
        return []
    return [v for v in sorted(squash.versions) if v not in state.applied and v not in on_disk]


def refuse_squashed_away(missing: list[int], squash: Baseline, settings: Settings) -> None:
    """Refuse a database that needs files that only live on in the squashed baseline now."""
    why = ("--no-baseline keeps the baseline off this fresh database"
           if settings.no_baseline else "it is not fresh, so it never runs the baseline")
    raise MigrationFileError(
        f"this database lacks version(s) {versions_text(missing)}, whose files were deleted after "
        f"`kgmigrate squash` put them into {squash.path.name} (squashed through "
        f"{version_text(squash.squashed_through)}), and {why}. Restore those files from version "
        f"control (e.g. `git checkout <commit before the deletion> -- "
        f"{settings.migrations_dir}`), run `kgmigrate up`, then delete them again. Nothing was "
        f"applied.")


def parse_baseline(path: Path) -> tuple[list[Statement], LineMap]:
    """Read and parse `00_baseline.sql`."""
    text = read_sql(path)
    lines = LineMap(text)
    return split_statements(text, path, lines), lines
