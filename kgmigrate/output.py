"""Terminal output: colour only on a TTY and never with NO_COLOR; chatter to stderr."""

from __future__ import annotations

import os
import sys

import click


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


def ok_mark() -> str:
    return "✓" if _utf8() else "+"


def arrow() -> str:
    return "→" if _utf8() else "->"


def _utf8() -> bool:
    return (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") in ("utf8",)


def version_label(v: int | None) -> str:
    """Return a schema version as 003, or 'none' for an empty database."""
    return "none" if v is None else f"{v:03d}"


def human_size(n: int) -> str:
    """Return a byte count as 1.2 MB and the like."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
