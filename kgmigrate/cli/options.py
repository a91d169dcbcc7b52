"""Click options that several commands share (up, down, lint, mark, unmark)."""

from __future__ import annotations

import click

LINT_MODES = ("warn", "error", "off")

ddl_lock_timeout_option = click.option(
    "--ddl-lock-timeout", type=click.FloatRange(min=0), default=5, show_default=True,
    envvar="KG_DDL_LOCK_TIMEOUT", metavar="SECONDS",
    help="How long each statement may wait for a table lock before it gives up and its file is "
         "retried; only the wait is bounded, never the statement. 0 = the database's own "
         "lock_timeout [env KG_DDL_LOCK_TIMEOUT].")


lock_timeout_option = click.option(
    "--lock-timeout", type=click.FloatRange(min=0), default=60, show_default=True,
    metavar="SECONDS",
    help="How long to wait for another kgmigrate runner's migration lock (advisory lock; not "
         "about table locks, see --ddl-lock-timeout).")

yes_option = click.option("-y", "--yes", is_flag=True, help="Go ahead without asking.")

verbose_option = click.option("-v", "--verbose", is_flag=True, help="Say more (on stderr).")

quiet_option = click.option(
    "-q", "--quiet", is_flag=True,
    help="Hide the server's NOTICE and INFO messages (WARNINGs still show).")


def snapshot_option(doing: str):
    """The --snapshot/--no-snapshot option of `up` and `down`."""
    return click.option(
        "--snapshot/--no-snapshot", default=None,
        help=f"Snapshot before {doing}, without asking / never ask [default: ask when "
             f"interactive and the database holds data].")


retries_option = click.option(
    "--retries", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
    help="How often a file that gave up waiting for a table lock is rolled back and retried, "
         "after a jittered backoff.")


def lint_mode_option(what: str):
    """The --lint option of `up` and `down`, saying which files it lints."""
    return click.option(
        "--lint", "lint_mode", type=click.Choice(LINT_MODES), default="warn", show_default=True,
        envvar="KG_LINT",
        help=f"Lint {what} with squawk first: print findings (warn), also refuse to run on an "
             f"error finding (error), or skip (off) [env KG_LINT].")
