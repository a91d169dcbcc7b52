"""The kgmigrate command line: the root group, its global options, and the one place that turns
kgmigrate's errors into one-line messages. Each command lives in a module of its own."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import Interrupted, KgMigrateError, Terminated, one_line
from ..settings import (
    DEFAULT_TABLE,
    TRACKING_TABLE,
    Settings,
    TableName,
)
from .check import check
from .down import down
from .graph import graph
from .lint import lint
from .localdb import localdb
from .mark import mark, unmark
from .new import new
from .output import say
from .renumber import renumber
from .snapshot import restore, snapshot
from .squash import squash
from .up import repair, status, up

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(exc: KgMigrateError) -> click.ClickException:
    err = click.ClickException(str(exc))
    err.exit_code = exc.exit_code
    return err


def _raise_terminated(signum, frame):
    raise Terminated


def _terminate_as_interrupt():
    """Make SIGTERM raise Terminated (a KeyboardInterrupt) meanwhile; return the old handler."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        return None


def _stopped(ctx: click.Context, what: str | None, terminated: bool) -> None:
    """Say what Ctrl-C or SIGTERM left behind; exit 130 or 143 as a shell reports them."""
    said = f": {what}" if what else "."
    say(f"\nInterrupted{' by SIGTERM' if terminated else ''}{said}", fg="red", err=True)
    ctx.exit(143 if terminated else 130)


class KgGroup(click.Group):
    """A group that turns KgMigrateError into a one-line error with exit code 1."""

    def invoke(self, ctx: click.Context):
        previous = _terminate_as_interrupt()
        try:
            return super().invoke(ctx)
        except KgMigrateError as exc:
            raise _fail(exc) from None
        except Interrupted as exc:
            _stopped(ctx, str(exc), exc.terminated)
        except KeyboardInterrupt as exc:  # outside a file (a snapshot cleans up after itself)
            _stopped(ctx, None, isinstance(exc, Terminated))
        except Exception as exc:
            # A database error outside a migration's statements (privileges, a lost connection).
            psycopg = sys.modules.get("psycopg")
            if psycopg is None or not isinstance(exc, psycopg.Error):
                raise
            raise _fail(KgMigrateError(f"database error: {one_line(exc)}")) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _table_name(ctx: click.Context, param: click.Parameter, value: str) -> TableName:
    if value == DEFAULT_TABLE:
        return TRACKING_TABLE  # no parser import for the usual case
    try:
        return TableName.parse(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


@click.group(cls=KgGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--database-url", envvar="KG_DATABASE_URL", metavar="URL",
              help="PostgreSQL URL [env KG_DATABASE_URL]; default: libpq PG* variables, "
                   "else the project-local database in .kgdata/.")
@click.option("--migrations-dir", envvar="KG_MIGRATIONS_DIR", default="schema/migrations",
              show_default=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of NNN_name.sql files [env KG_MIGRATIONS_DIR].")
@click.option("--no-baseline", is_flag=True, envvar="KG_NO_BASELINE",
              help="Never apply <migrations-dir>/../00_baseline.sql to a fresh database "
                   "[env KG_NO_BASELINE=1].")
@click.option("--backups-dir", envvar="KG_BACKUPS_DIR", default="backups", show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder for snapshots [env KG_BACKUPS_DIR].")
@click.option("--table", envvar="KG_MIGRATIONS_TABLE", default=DEFAULT_TABLE, show_default=True,
              metavar="NAME", callback=_table_name,
              help="The tracking table, schema-qualified; its schema is created when missing "
                   "[env KG_MIGRATIONS_TABLE].")
@click.option("--repeatable-dir", envvar="KG_REPEATABLE_DIR",
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder of repeatable files, re-applied when they change [env "
                   "KG_REPEATABLE_DIR; default: <migrations-dir>/../repeatable].")
@click.version_option(__version__, "-V", "--version", prog_name="kgmigrate")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, migrations_dir: Path, no_baseline: bool,
        backups_dir: Path, table: TableName, repeatable_dir: Path | None) -> None:
    """Evolve a PostgreSQL schema from versioned SQL files."""
    ctx.obj = Settings(database_url=database_url or None, migrations_dir=migrations_dir,
                       backups_dir=backups_dir, no_baseline=no_baseline, table=table,
                       repeatable_dir=repeatable_dir)


cli.add_command(up)
cli.add_command(status)
cli.add_command(repair)
cli.add_command(down)
cli.add_command(new)
cli.add_command(mark)
cli.add_command(unmark)
cli.add_command(localdb)
cli.add_command(lint)
cli.add_command(snapshot)
cli.add_command(restore)
cli.add_command(graph)
cli.add_command(check)
cli.add_command(renumber)
cli.add_command(squash)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kgmigrate")

