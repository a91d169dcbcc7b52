"""`kgmigrate renumber`: give a pending file the next free number (a branch merged late)."""

from __future__ import annotations

import click

from ..settings import Settings
from .output import say


@click.command()
@click.argument("file")
@click.argument("new", type=click.IntRange(min=1), required=False)
@click.pass_obj
def renumber(settings: Settings, file: str, new: int | None) -> None:
    """Move pending FILE (and its down file) to the next free number, or to NEW.

    FILE is a path, a file name or a version. Uses `git mv` when git tracks the file; `requires`
    references to the old number in later pending files follow it. Applied files are refused.
    """
    from ..apply import tracking
    from ..apply.session import open_database
    from ..files.renumber import read_for_renumber
    from ..files.renumber import renumber as do_renumber

    graph, mf = read_for_renumber(settings, file)
    _, conn = open_database(settings, read_only=True)
    with conn:
        state = tracking.read_state(conn, settings.table)
    done = do_renumber(graph, mf, {v: r.name for v, r in state.applied.items()}, new)
    for old, moved in done.moves:
        if done.with_git:
            say(f"git mv {old} {moved}")
        else:
            say(f"mv {old} {moved}  (not tracked by git: renamed without it)")
    for path, old, word in done.rewritten:
        say(f"{path}: requires {old} -> {word}")
