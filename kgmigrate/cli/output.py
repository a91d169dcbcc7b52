"""Terminal output shared by the CLI modules: lines, warnings, prompts and the header block.

Colour only on a TTY and never with NO_COLOR; chatter to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from .. import __version__
from ..apply.progress import Reporter
from ..files.versions import version_text


def _colour_allowed(stream) -> bool:
    return "NO_COLOR" not in os.environ and stream.isatty()


def say(message: str = "", fg: str | None = None, bold: bool = False, err: bool = False) -> None:
    """Print a line to stdout (stderr with err=True), styled when the stream is a terminal."""
    stream = sys.stderr if err else sys.stdout
    if (fg or bold) and _colour_allowed(stream):
        message = click.style(message, fg=fg, bold=bold)
    click.echo(message, err=err, color=_colour_allowed(stream))


def say_lines(lines: list[tuple[str, str | None]]) -> None:
    """Print many lines to stdout at once, each (text, colour), styled on a terminal."""
    styled = _colour_allowed(sys.stdout)
    text = "\n".join(click.style(t, fg=fg) if styled and fg else t for t, fg in lines)
    if text:
        click.echo(text, color=styled)


def warn(message: str) -> None:
    """Print a warning to stderr."""
    say(f"Warning: {message}", fg="yellow", err=True)


def header(title: str, lines: Iterable[str]) -> None:
    """Print the block a command opens with: kgmigrate, its version and `title`, the lines, a gap."""
    say(f"kgmigrate {__version__} — {title}", bold=True)
    for line in lines:
        say(line)
    say()


def command_header(settings, conninfo: str, title: str) -> None:
    """Print the header of a command that works on the migrations: database and folder."""
    from ..settings import describe_target

    header(title, [f"Database:   {describe_target(settings, conninfo)}",
                   f"Migrations: {settings.migrations_dir}"])


def confirm(question: str, default: bool) -> bool:
    """Ask on stdin; EOF counts as the default answer."""
    try:
        return click.confirm(question, default=default)
    except click.Abort:
        say()
        return default


def ok_mark() -> str:
    return "✓" if _utf8() else "+"


def arrow() -> str:
    return "→" if _utf8() else "->"


def _utf8() -> bool:
    return (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") in ("utf8",)


def version_label(v: int | None) -> str:
    """Return a schema version as 003, or 'none' for an empty database."""
    return "none" if v is None else version_text(v)


def human_size(n: int) -> str:
    """Return a byte count as 1.2 MB and the like."""
    if n < 1000:
        return f"{n} B"
    size = n / 1000
    for unit in ("kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class TerminalReporter(Reporter):
    """Print what `apply` does: files applied on stdout, notices and retries on stderr."""

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose, self.quiet = verbose, quiet
        self._shown: str | None = None  # the file whose notices are being shown

    def baseline_applied(self, path: Path, ms: int) -> None:
        say(f"  {ok_mark()} Baseline {path.name} ({ms} ms)", fg="green")

    def checksums_filled(self, versions: list[int]) -> None:
        if self.verbose:
            say(f"Recorded checksums of earlier applied version(s) "
                f"{', '.join(map(str, versions))}", err=True)

    def migration_started(self, mig) -> None:
        if self.verbose:
            say(f"Running {mig.path} ({len(mig.statements)} statement(s))", err=True)

    def migration_applied(self, mig, ms: int) -> None:
        say(f"  {ok_mark()} Migration {version_text(mig.version)} - {mig.name} ({ms} ms)",
            fg="green")

    def repeatable_applied(self, mig, ms: int) -> None:
        say(f"  {ok_mark()} Repeatable {mig.name} ({ms} ms)", fg="green")

    def migration_reversed(self, mig, ms: int) -> None:
        say(f"  {ok_mark()} Reversed {version_text(mig.version)} - {mig.name} ({ms} ms)",
            fg="green")

    def notice(self, label: str, diag) -> None:
        # On stderr as psql prints them, under the file they came from, as they arrive.
        from ..apply.dberrors import is_loud, render_notice

        if self.quiet and not is_loud(diag):
            return
        if label != self._shown:
            self._shown = label
            say(f"  {label}:", err=True)
        say(render_notice(diag, indent="      "), err=True)

    def lock_retry(self, notice) -> None:
        warn(notice.line())
