"""`kgmigrate check`: find what is wrong with the migration files, no database needed (CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..settings import Settings
from .output import say, say_lines


def _shown(path: Path) -> str:
    """Return `path` relative to the current folder when it is below it (what CI annotates)."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _github_escape(text: str, prop: bool = False) -> str:
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return out.replace(":", "%3A").replace(",", "%2C") if prop else out


@click.command()
@click.option("--base", metavar="REF",
              help="A git ref (e.g. origin/main): report files added since numbered at or "
                   "below its highest, and its files edited or deleted since.")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "github")), default="text",
              show_default=True, help="github: ::error annotations for GitHub Actions.")
@click.option("--lint", "lint", is_flag=True,
              help="Also lint with squawk the files new relative to --base (all without it).")
@click.pass_obj
def check(settings: Settings, base: str | None, fmt: str, lint: bool) -> None:
    """Check the migration files without a database: exit 0 clean, 1 findings, 2 usage."""
    from ..files.check import check as do_check
    from ..files.graph import provided_by_baseline

    result = do_check(settings.migrations_dir, base, lint,
                      provided_by_baseline(settings.baseline_path), settings.repeatables_path)
    if fmt == "json":
        click.echo(json.dumps({"files": result.files, "base": result.base,
                               "errors": len(result.errors),
                               "findings": [f.as_json() for f in result.findings]}, indent=2))
    elif fmt == "github":
        for f in result.findings:
            click.echo(f"::{f.severity} file={_github_escape(_shown(f.path), True)},"
                       f"line={f.line},title={_github_escape('kgmigrate ' + f.kind, True)}::"
                       f"{_github_escape(f.message)}")
    else:
        say_lines([(f"{_shown(f.path)}:{f.line}: {f.kind}: {f.message}",
                    "red" if f.severity == "error" else "yellow") for f in result.findings])
        n = len(result.findings)
        against = f" against {base}" if base else ""
        say(f"check: {n} finding(s) in {result.files} file(s){against}." if n else
            f"check: no findings in {result.files} file(s){against}.",
            fg="red" if result.errors else "yellow" if n else "green")
    if result.errors:
        raise click.exceptions.Exit(1)
