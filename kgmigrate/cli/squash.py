"""`kgmigrate squash --through N`: fold migrations 001..N into the baseline file."""

from __future__ import annotations

import click

from ..files.versions import version_text
from ..settings import Settings, mask_url
from .output import TerminalReporter, say, warn


@click.command()
@click.option("--through", type=click.IntRange(min=1), required=True, metavar="N",
              help="Fold every migration up to version N into the baseline.")
@click.option("--scratch-url", envvar="KG_SCRATCH_URL", metavar="URL",
              help="A server to replay on, as a URL to one of its databases: a temporary "
                   "database is created there (needs CREATEDB) and dropped afterwards "
                   "[env KG_SCRATCH_URL; default: the project-local PostgreSQL].")
@click.pass_obj
def squash(settings: Settings, through: int, scratch_url: str | None) -> None:
    """Rewrite the baseline as the schema and seeded rows after migrations 001..N.

    No database of yours is touched: the baseline and 001..N are replayed on a temporary
    database, dumped, and written to <migrations-dir>/../00_baseline.sql.
    """
    from ..apply.squash import squash as do_squash

    where = mask_url(scratch_url) if scratch_url else "the project-local PostgreSQL"
    say(f"Replaying the baseline and migrations up to {version_text(through)} on a temporary "
        f"database on {where}")
    result = do_squash(settings, through, scratch_url, reporter=TerminalReporter(quiet=True))
    say()
    rows = (f", with the rows of {len(result.seeded)} table(s): {', '.join(result.seeded)}"
            if result.seeded else "")
    say(f"Wrote {result.path}: the schema after {len(result.squashed)} migration(s) up to "
        f"{version_text(through)}{rows} ({result.seconds:.1f} s).", fg="green", bold=True)
    say(f"A fresh database now runs it, records 001..{version_text(through)} as applied and "
        f"applies the migrations above; databases that already have them are unaffected.")
    if not result.deletable:
        return
    say()
    say(f"These {len(result.deletable)} file(s) are in the baseline now. Delete them once every "
        f"database has reached {version_text(through)} (`kgmigrate status` there says):")
    for path in result.deletable:
        say(f"  {path}")
    say(f"  git rm {' '.join(str(p) for p in result.deletable)}")
    warn("a database below that version still needs the files; `up` refuses it until they "
         "are restored")
