"""Applied files against the checksums recorded for them: find drift, refuse it, fill checksums
never recorded (under the runner lock), and accept deliberate edits (`repair`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ..errors import DriftError, MigrationFileError
from ..files.migrations import MigrationFile, discover
from ..settings import Settings
from . import tracking
from .locks.runner import DEFAULT_TIMEOUT_S, advisory_lock
from .progress import Reporter


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
        current = mf.checksum
        if row.checksum is None:
            out.unfilled[mf.version] = current
        elif row.checksum != current:
            out.drifted.append(mf.version)
        if mf.down is None:
            continue
        down = mf.down_checksum
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


def settle(conn: psycopg.Connection, table: tracking.TableName, files: list[MigrationFile],
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


def repair(conn: psycopg.Connection, settings: Settings, versions: list[int],
           lock_timeout: float = DEFAULT_TIMEOUT_S) -> list[int]:
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
                tracking.set_checksum(conn, table, v, mf.checksum)
                tracking.set_checksum(conn, table, v, mf.down_checksum, "down_checksum")
    return sorted(chosen)
