"""`kgmigrate mark` and `unmark`: record migrations as applied, or forget them, running nothing."""

from __future__ import annotations

import click

from ..files.versions import version_text, versions_text
from ..settings import Settings
from .options import lock_timeout_option, yes_option
from .output import arrow, command_header, confirm, say


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
            say(f"Nothing to mark: version {version_text(version)} is already applied."
                if through is None
                else f"Nothing to mark: no pending version up to {version_text(through)}.")
            return
        names = {mf.version: mf.name for mf in plan.files}
        for v in plan.versions:
            say(f"  {arrow()} Migration {version_text(v)} - {names[v]}", fg="cyan")
        if not yes and not confirm(f"Record {len(plan.versions)} migration(s) as applied "
                                   f"without running them?", default=False):
            say("Nothing marked.")
            return
        done = do_mark(conn, settings, version, through, lock_timeout)
    say(f"Marked as applied (not run): {versions_text(done) or 'none'}", fg="green")


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
        say(f"  {arrow()} Migration {version_text(version)} - {row.name}", fg="cyan")
        if not yes and not confirm(f"Forget migration {version_text(version)} without "
                                   f"reversing it?", default=False):
            say("Nothing unmarked.")
            return
        do_unmark(conn, settings, version, lock_timeout)
    say(f"Unmarked: {version_text(version)}; what it changed stays in the database, and "
        f"`kgmigrate up` will run it again", fg="green")
