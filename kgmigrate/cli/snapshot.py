"""`kgmigrate snapshot` and `kgmigrate restore`, and the snapshot offered before `up`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..settings import Settings, describe_target
from .output import confirm, header, human_size, say, version_label, warn

if TYPE_CHECKING:  # psycopg and the restore module load only when a command needs them
    import psycopg

    from ..snapshot.restore import Checked
    from ..snapshot.take import Snapshot


def _restore_hint(path: Path) -> str:
    return f"Restore with: kgmigrate restore {path}"


def make_snapshot(settings: Settings, conninfo: str, conn: psycopg.Connection,
                  fmt: str = "custom", output: Path | None = None, keep: int | None = None,
                  quiet: bool = False) -> Snapshot:
    """Take a snapshot of the connected database and report it."""
    from ..snapshot.dbfacts import db_facts
    from ..snapshot.take import take_snapshot

    facts = db_facts(conn, settings.table)
    snap = take_snapshot(conninfo, facts, settings.backups_dir, output=output, fmt=fmt, keep=keep)
    if quiet:
        click.echo(str(snap.path))
    else:
        say(f"Snapshot: {snap.path} ({human_size(snap.manifest.size)}, {fmt}, schema version "
            f"{version_label(facts.schema_version)}, {snap.seconds:.1f} s)", fg="green")
        say(_restore_hint(snap.path))
        for old in snap.removed:
            say(f"Removed old snapshot {old.name}")
    return snap


@click.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Write here instead of <backups-dir>/snapshot_<database>_<time>.dump.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the snapshot's path.")
@click.option("--format", "fmt", type=click.Choice(["custom", "plain"]), default=None,
              help="pg_dump format [default: custom; plain when FILE ends in .sql].")
@click.option("--keep", type=click.IntRange(min=1), metavar="N",
              help="Then delete all but the newest N snapshots of this database.")
@click.pass_obj
def snapshot(settings: Settings, output: Path | None, quiet: bool, fmt: str | None,
             keep: int | None) -> None:
    """Dump the database to a checksummed snapshot file."""
    if fmt is None:
        fmt = "plain" if output is not None and output.suffix == ".sql" else "custom"
    from ..apply.session import open_database

    conninfo, conn = open_database(settings)
    with conn:
        if not quiet:
            header("snapshot", [f"Database: {describe_target(settings, conninfo)}"])
        make_snapshot(settings, conninfo, conn, fmt=fmt, output=output, keep=keep, quiet=quiet)


def _resolve(settings: Settings, file: Path) -> Path:
    """Return `file`, or the file of that name in the backups folder when only that exists."""
    if not file.exists() and not file.is_absolute() and (settings.backups_dir / file).exists():
        return settings.backups_dir / file
    return file


def _list(settings: Settings) -> None:
    from ..snapshot.manifest import list_snapshots

    entries = list_snapshots(settings.backups_dir)
    if not entries:
        say(f"No snapshots in {settings.backups_dir}")
        return
    say(f"Snapshots in {settings.backups_dir} (newest first):", bold=True)
    rows = [("FILE", "SIZE", "CREATED (UTC)", "DATABASE", "SCHEMA", "")]
    for e in entries:
        m = e.manifest
        rows.append((e.path.name, human_size(e.size), f"{e.created:%Y-%m-%d %H:%M:%S}",
                     m.database if m else "?", version_label(m.schema_version) if m else "?",
                     f"unverified: {e.problem}" if e.problem else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5]
        say(line.rstrip())


@click.command()
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-y", "--yes", is_flag=True, help="Restore without asking.")
@click.option("--list", "list_", is_flag=True, help="List the snapshots in the backups folder.")
@click.option("--unverified", is_flag=True,
              help="Allow a file kgmigrate did not write (no manifest, a symbolic link, outside "
                   "the backups folder): it runs as it is, so check where it comes from.")
@click.pass_obj
def restore(settings: Settings, file: Path | None, yes: bool, list_: bool,
            unverified: bool) -> None:
    """Replace the database's content with a snapshot, atomically."""
    from ..apply.session import open_database
    from ..snapshot.restore import check_file

    if list_:
        if file is not None:
            raise click.UsageError("--list takes no FILE")
        _list(settings)
        return
    if file is None:
        raise click.UsageError("missing FILE (or use --list)")
    # Before touching the database.
    checked = check_file(_resolve(settings, file), settings.backups_dir, unverified)
    for w in checked.warnings:
        warn(w)
    conninfo, conn = open_database(settings)
    with conn:
        _confirm_and_restore(settings, conninfo, conn, checked, yes)


def _confirm_and_restore(settings: Settings, conninfo: str, conn: psycopg.Connection,
                         checked: Checked, yes: bool) -> None:
    from ..apply.locks.runner import advisory_lock
    from ..snapshot.dbfacts import db_facts
    from ..snapshot.restore import run_restore

    facts = db_facts(conn, settings.table)
    header("restore", [
        f"Database:  {describe_target(settings, conninfo)}",
        f"Snapshot:  {checked.path} ({human_size(checked.path.stat().st_size)}, "
        f"{_provenance(checked)})",
        f"Current schema version:  {version_label(facts.schema_version)}",
        f"Snapshot schema version: {_snapshot_version(checked)}"])
    if not yes:
        say(f"Warning: all current data in database {facts.database} will be replaced by the "
            f"snapshot.", fg="yellow")
        question = "Restore the snapshot?"
        if checked.unverified:
            question = (f"Restore this unverified file? It claims to be {checked.info.claims()}; "
                        f"nothing checks that")
        if not confirm(question, default=False):
            say("Nothing restored.")
            return
    say(f"Restoring into {facts.database} in one transaction...")
    with advisory_lock(conn, 60):  # no `kgmigrate up` may run meanwhile
        run_restore(checked, conninfo, facts.server_major)
    after = db_facts(conn, settings.table)
    say(f"Restored {checked.path.name}. Schema version: {version_label(after.schema_version)}",
        fg="green", bold=True)


def _provenance(checked: Checked) -> str:
    """Say where the snapshot comes from and what of its description was checked."""
    m = checked.manifest
    if checked.unverified:
        return (f"{checked.format}, unverified: {'; '.join(checked.unverified)}; it claims to be "
                f"{checked.info.claims()}")
    taken = m.created_at[:19].replace("T", " ")
    claimed = [word for claim, word in (("taken at", "time"), ("database", "database name"))
               if claim in checked.claims]
    if not claimed:
        return f"{checked.format}, checksum and header verified, taken {taken} from {m.database}"
    return (f"{checked.format}, checksum verified, taken {taken} from {m.database}; "
            f"{' and '.join(claimed)} as the manifest claims: the dump does not record them")


def _snapshot_version(checked: Checked) -> str:
    m = checked.manifest
    if m is None:
        return "unknown"
    return f"{version_label(m.schema_version)} (the manifest's claim: a dump does not record it)"


def snapshot_before_up(settings: Settings, conninfo: str, conn: psycopg.Connection,
                       want: bool | None, yes: bool) -> None:
    """Snapshot before `up` applies: on --snapshot, or if the user agrees when data exists."""
    from ..snapshot.dbfacts import holds_data

    if want is False:
        return
    if want is None:
        if yes or not holds_data(conn, settings.table):
            return
        say()
        if not confirm("Create snapshot before migrating?", default=True):
            return
    make_snapshot(settings, conninfo, conn)
