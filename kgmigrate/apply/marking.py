"""`mark` and `unmark`: record versions as applied, or forget them, without running any file.

How an operator adopts a database built by hand or by another tool, and recovers from a
no-transaction file that failed half-way.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..errors import MigrationFileError
from ..files.migrations import MigrationFile, discover
from ..files.versions import version_text
from ..settings import Settings
from . import tracking
from .locks.runner import advisory_lock


@dataclass
class MarkPlan:
    """The versions `mark`/`unmark` would change, read without writing anything."""

    state: tracking.DbState
    files: list[MigrationFile]
    versions: list[int]


def to_mark(state: tracking.DbState, files: list[MigrationFile], version: int | None,
            through: int | None) -> list[int]:
    """Return the versions to record: `version` (its file must exist), or every pending one
    up to `through`; versions already applied are left out."""
    on_disk = {mf.version for mf in files}
    if version is not None:
        if version not in on_disk:
            raise MigrationFileError(f"no migration file for version {version_text(version)}: "
                                     f"mark records a file that exists")
        return [] if version in state.applied else [version]
    return [v for v in sorted(on_disk) if v <= through and v not in state.applied]


def to_unmark(state: tracking.DbState, version: int) -> list[int]:
    """Return [version] when it is recorded as applied; refuse otherwise."""
    if version not in state.applied:
        raise MigrationFileError(f"version {version_text(version)} is not recorded as applied: "
                                 f"nothing to unmark")
    return [version]


def plan_mark(conn: psycopg.Connection, settings: Settings, version: int | None = None,
              through: int | None = None, unmark: bool = False) -> MarkPlan:
    """Read the directory and the database; choose what `mark` (or `unmark`) would change."""
    files = discover(settings.migrations_dir)
    state = tracking.read_state(conn, settings.table)
    chosen = to_unmark(state, version) if unmark else to_mark(state, files, version, through)
    return MarkPlan(state, files, chosen)


def mark(conn: psycopg.Connection, settings: Settings, version: int | None, through: int | None,
         lock_timeout: float) -> list[int]:
    """Under the lock, record the chosen versions with their checksums; return them."""
    table, by = settings.table, f"{tracking.applied_by()} mark"
    with advisory_lock(conn, lock_timeout):
        plan = plan_mark(conn, settings, version, through)  # the state under the lock
        files = {mf.version: mf for mf in plan.files}
        with conn.transaction():
            tracking.ensure_table(conn, table, plan.state)
            for v in plan.versions:
                mf = files[v]
                conn.execute(tracking.record_sql(conn, table, v, mf.name, mf.checksum, by,
                                                 execution_ms=0, down_checksum=mf.down_checksum))
    return plan.versions


def unmark(conn: psycopg.Connection, settings: Settings, version: int,
           lock_timeout: float) -> list[int]:
    """Under the lock, delete the tracking row of `version`; return [version]."""
    with advisory_lock(conn, lock_timeout):
        plan = plan_mark(conn, settings, version, unmark=True)
        with conn.transaction():
            conn.execute(tracking.delete_sql(conn, settings.table, version))
    return plan.versions
