"""What `up` would do, read without writing anything: pending files, drift, the baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DriftError
from ..files.migrations import (
    Migration,
    MigrationFile,
    discover,
    file_checksum,
    load,
    read_text,
)
from ..files.sourcemap import LineMap
from ..files.sqltext import Statement, split_statements
from ..files.versions import version_text
from ..settings import Settings
from . import tracking

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

    @property
    def current_version(self) -> int | None:
        return self.state.current_version


def pending_files(files: list[MigrationFile], state: tracking.DbState,
                  target: int | None = None) -> list[MigrationFile]:
    """Return the files not applied yet, up to version `target` when given."""
    return [mf for mf in files if mf.version not in state.applied
            and (target is None or mf.version <= target)]


@dataclass
class Drift:
    """Applied files edited since (up and down files apart), and checksums not recorded yet."""

    drifted: list[int] = field(default_factory=list)
    down_drifted: list[int] = field(default_factory=list)
    unfilled: dict[int, str] = field(default_factory=dict)
    down_unfilled: dict[int, str] = field(default_factory=dict)


def drift(state: tracking.DbState, files: list[MigrationFile]) -> Drift:
    """Compare the applied files (and their down files) with the checksums recorded for them.

    A checksum not recorded yet (a database the old runner built, a down file added after its
    migration ran) is to be filled, not drift. A down file removed since is no drift: the
    migration is then simply not reversible.
    """
    out = Drift()
    for mf in files:
        row = state.applied.get(mf.version)
        if row is None:
            continue
        current = file_checksum(mf.path)
        if row.checksum is None:
            out.unfilled[mf.version] = current
        elif row.checksum != current:
            out.drifted.append(mf.version)
        if mf.down is None:
            continue
        down = file_checksum(mf.down)
        if row.down_checksum is None:
            out.down_unfilled[mf.version] = down
        elif row.down_checksum != down:
            out.down_drifted.append(mf.version)
    return out


def check_drift(drifted: list[int], files: list[MigrationFile],
                down_drifted: list[int] = ()) -> None:
    """Raise DriftError naming the drifted files and the `repair` command that accepts them."""
    if not drifted and not down_drifted:
        return
    ups = {mf.version: mf.path.name for mf in files}
    downs = {mf.version: mf.down.name for mf in files if mf.down is not None}
    listed = ", ".join([ups.get(v, str(v)) for v in drifted]
                       + [downs.get(v, str(v)) for v in down_drifted])
    versions = sorted({*drifted, *down_drifted})
    raise DriftError(f"applied migration(s) changed since they were applied: {listed}. "
                     f"Restore the files, or accept the edits with `kgmigrate repair "
                     f"{' '.join(str(v) for v in versions)}`")


def make_plan(conn: psycopg.Connection, settings: Settings, target: int | None = None,
              parse: bool = True,
              on_pending: Callable[[list[MigrationFile]], None] | None = None) -> Plan:
    """Read the database and the directory; parse every pending file (syntax errors stop here).

    `on_pending` learns the pending files before they are parsed (`up` starts its linter there).
    """
    files = discover(settings.migrations_dir)
    state = tracking.read_state(conn, settings.table)
    pending = pending_files(files, state, target)
    if on_pending is not None:
        on_pending(pending)
    parsed = [load(mf) for mf in pending] if parse else None
    baseline = settings.baseline_path
    use_baseline = (state.fresh and not settings.no_baseline and baseline.is_file())
    if use_baseline and parse:
        parse_baseline(baseline)
    found = drift(state, files)
    on_disk = {mf.version for mf in files}
    plan = Plan(state=state, files=files, baseline=baseline if use_baseline else None,
                pending=pending, parsed=parsed, drifted=found.drifted,
                missing_files=[v for v in state.applied if v not in on_disk], target=target,
                down_drifted=found.down_drifted)
    current = state.current_version
    for mf in pending:
        if current is not None and mf.version < current:
            plan.warnings.append(f"migration {version_text(mf.version)} ({mf.name}) is numbered "
                                 f"below the current version {version_text(current)}; it will be "
                                 f"applied in order")
    return plan


def parse_baseline(path: Path) -> tuple[list[Statement], LineMap]:
    """Read and parse `00_baseline.sql`."""
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = LineMap(text)
    return split_statements(text, path, lines), lines
