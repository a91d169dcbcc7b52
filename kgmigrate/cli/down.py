"""`kgmigrate down`, `new`, `mark` and `unmark`: reversing, writing and recording migrations."""

from __future__ import annotations

import click

from ..settings import Settings
from .lint import UpLint
from .options import (
    ddl_lock_timeout_option,
    lint_mode_option,
    lock_timeout_option,
    quiet_option,
    retries_option,
    snapshot_option,
    verbose_option,
)
from .output import TerminalReporter, arrow, command_header, confirm, say, version_label
from .snapshot import snapshot_before_up

yes_option = click.option("-y", "--yes", is_flag=True, help="Go ahead without asking.")


def _versions(versions: list[int]) -> str:
    return ", ".join(f"{v:03d}" for v in versions)


@click.command()
@click.option("--steps", type=click.IntRange(min=1), metavar="K",
              help="Reverse the K newest applied migrations [default: 1].")
@click.option("--to", "to", type=click.IntRange(min=0), metavar="N",
              help="Reverse every applied migration above version N (0: all but the baseline).")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing at all.")
@yes_option
@verbose_option
@quiet_option
@lock_timeout_option
@ddl_lock_timeout_option
@retries_option
@lint_mode_option("the down files to run")
@snapshot_option("reversing")
@click.pass_obj
def down(settings: Settings, steps: int | None, to: int | None, dry_run: bool, yes: bool,
         verbose: bool, quiet: bool, lock_timeout: float, ddl_lock_timeout: float, retries: int,
         lint_mode: str, snapshot: bool | None) -> None:
    """Reverse applied migrations with their NNN_name.down.sql files, newest first."""
    if steps is not None and to is not None:
        raise click.UsageError("give --steps or --to, not both")
    from ..apply.down import make_down_plan, reverse
    from ..apply.locks.ddl import DdlLockPolicy
    from ..apply.session import open_database

    conninfo, conn = open_database(settings, read_only=dry_run)
    with conn, UpLint(lint_mode, ddl_lock_timeout, "down files",
                      "nothing was reversed") as down_lint:
        command_header(settings, conninfo, "Dry run (down)" if dry_run else "reverse migrations")
        plan = make_down_plan(conn, settings, steps, to,
                              on_chosen=lambda chosen: down_lint.start(chosen, down=True))
        say(f"Applied: {len(plan.state.applied)} migration(s)")
        say(f"To reverse: {len(plan.parsed)} migration(s), newest first")
        for m in plan.parsed:
            say(f"  {arrow()} Reverse {m.version:03d} - {m.name} ({m.path.name})"
                + ("  [no-transaction]" if not m.transactional else ""), fg="cyan")
        down_lint.finish()
        count = len(plan.parsed)
        if dry_run or count == 0:
            say()
            say(f"{'Dry run: nothing was reversed' if dry_run else 'Nothing to reverse'}. "
                f"Current schema version: {version_label(plan.current_version)}")
            return
        snapshot_before_up(settings, conninfo, conn, want=snapshot, yes=yes)
        if not yes:
            say()
            if not confirm(f"Reverse {count} migration(s)?", default=False):
                say("Nothing reversed.")
                return
        if verbose:
            say(f"Waiting for the migration lock (up to {lock_timeout:g} s)", err=True)
        result = reverse(conn, settings, plan, lock_timeout,
                         reporter=TerminalReporter(verbose, quiet),
                         ddl_policy=DdlLockPolicy(timeout_s=ddl_lock_timeout, retries=retries))
    say()
    if result.skipped:
        say(f"Another runner reversed {_versions(result.skipped)} meanwhile.")
    say(f"Reversed: {len(result.reversed)} migration(s). Schema version: "
        f"{version_label(result.current_version)}", fg="green", bold=True)


@click.command()
@click.argument("name", nargs=-1, required=True)
@click.option("--down", is_flag=True, help="Also create NNN_name.down.sql.")
@click.option("--no-transaction", is_flag=True,
              help="Write the `-- kgmigrate: no-transaction` directive (CREATE INDEX "
                   "CONCURRENTLY and the like).")
@click.pass_obj
def new(settings: Settings, name: tuple[str, ...], down: bool, no_transaction: bool) -> None:
    """Create the next migration file, NNN_name.sql, and print its path."""
    from ..files.scaffold import create

    try:
        paths = create(settings.migrations_dir, " ".join(name), down=down,
                       no_transaction=no_transaction)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for path in paths:
        click.echo(str(path))


@click.command()
@click.argument("version", type=click.IntRange(min=0), required=False)
@click.option("--through", type=click.IntRange(min=0), metavar="N",
              help="Mark every pending version up to and including N.")
@yes_option
@lock_timeout_option
@click.pass_obj
def mark(settings: Settings, version: int | None, through: int | None, yes: bool,
         lock_timeout: float) -> None:
    """Record a migration as applied without running it (adopting a database built otherwise)."""
    if (version is None) == (through is None):
        raise click.UsageError("give a VERSION or --through N")
    from ..apply.marking import mark as do_mark
    from ..apply.marking import plan_mark
    from ..apply.session import open_database

    conninfo, conn = open_database(settings)
    with conn:
        command_header(settings, conninfo, "mark")
        plan = plan_mark(conn, settings, version, through)
        if not plan.versions:
            say(f"Nothing to mark: version {version:03d} is already applied." if through is None
                else f"Nothing to mark: no pending version up to {through:03d}.")
            return
        names = {mf.version: mf.name for mf in plan.files}
        for v in plan.versions:
            say(f"  {arrow()} Migration {v:03d} - {names[v]}", fg="cyan")
        if not yes and not confirm(f"Record {len(plan.versions)} migration(s) as applied "
                                   f"without running them?", default=False):
            say("Nothing marked.")
            return
        done = do_mark(conn, settings, version, through, lock_timeout)
    say(f"Marked as applied (not run): {_versions(done) or 'none'}", fg="green")


@click.command()
@click.argument("version", type=click.IntRange(min=0))
@yes_option
@lock_timeout_option
@click.pass_obj
def unmark(settings: Settings, version: int, yes: bool, lock_timeout: float) -> None:
    """Forget that a migration was applied, running nothing (its changes stay in the database)."""
    from ..apply.marking import plan_mark
    from ..apply.marking import unmark as do_unmark
    from ..apply.session import open_database

    conninfo, conn = open_database(settings)
    with conn:
        command_header(settings, conninfo, "unmark")
        plan = plan_mark(conn, settings, version, unmark=True)
        row = plan.state.applied[version]
        say(f"  {arrow()} Migration {version:03d} - {row.name}", fg="cyan")
        if not yes and not confirm(f"Forget migration {version:03d} without reversing it?",
                                   default=False):
            say("Nothing unmarked.")
            return
        do_unmark(conn, settings, version, lock_timeout)
    say(f"Unmarked: {version:03d}; what it changed stays in the database, and `kgmigrate up` "
        f"will run it again", fg="green")
