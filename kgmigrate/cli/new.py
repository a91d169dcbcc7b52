"""`kgmigrate new`: write the next migration file (and its down file)."""

from __future__ import annotations

import click

from ..settings import Settings


@click.command()
@click.argument("name", nargs=-1, required=True)
@click.option("--down", is_flag=True, help="Also create NNN_name.down.sql.")
@click.option("--no-transaction", is_flag=True,
              help="Write the `-- kgmigrate: no-transaction` directive (CREATE INDEX "
                   "CONCURRENTLY and the like).")
@click.pass_obj
def new(settings: Settings, name: tuple[str, ...], down: bool, no_transaction: bool) -> None:
    """Create the next migration file, NNN_name.sql, and print its path."""
    from ..files.baseline import read_baseline
    from ..files.scaffold import create

    squash = read_baseline(settings.baseline_path)
    try:
        paths = create(settings.migrations_dir, " ".join(name), down=down,
                       no_transaction=no_transaction,
                       taken=(squash.squashed_through or 0) if squash else 0)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for path in paths:
        click.echo(str(path))
