"""`kgmigrate down`: reverse applied migrations with their down files, newest first."""

from __future__ import annotations

import click

from ..files.versions import version_text, versions_text
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
    yes_option,
)
from .output import TerminalReporter, arrow, command_header, confirm, say, version_label
from .snapshot import snapshot_before_up


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
                      "nothing was reversed", verbose) as down_lint:
        command_header(settings, conninfo, "Dry run (down)" if dry_run else "reverse migrations")
        plan = make_down_plan(conn, settings, steps, to,
                              on_chosen=lambda chosen: down_lint.start(chosen, down=True))
        say(f"Applied: {len(plan.state.applied)} migration(s)")
        say(f"To reverse: {len(plan.parsed)} migration(s), newest first")
        for m in plan.parsed:
            say(f"  {arrow()} Reverse {version_text(m.version)} - {m.name} ({m.path.name})"
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
        say(f"Another runner reversed {versions_text(result.skipped)} meanwhile.")
    say(f"Reversed: {len(result.reversed)} migration(s). Schema version: "
        f"{version_label(result.current_version)}", fg="green", bold=True)
