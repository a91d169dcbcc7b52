"""`kgmigrate lint`, and the lint step of `up` and `down`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Self

import click

from ..errors import LintRefused, LintUnavailable, MigrationFileError
from ..settings import Settings
from .options import ddl_lock_timeout_option
from .output import say, say_lines, warn

if TYPE_CHECKING:
    from ..files.squawk import Finding, LintReport, SquawkRun

def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _finding_lines(f: Finding) -> list[tuple[str, str | None]]:
    first = (f"{f.path}:{f.line}:{f.column}: {f.rule}: {f.message}",
             "red" if f.severity == "error" else "yellow")
    return [first, (f"  help: {f.help}", None)] if f.help else [first]


def summary(report: LintReport) -> str:
    """Return the one summary line: counts, which rules are errors, what was hidden."""
    files = _plural(len(report.files), "file")
    if not report.findings:
        out = f"Lint: no findings in {files}"
    else:
        errors = report.errors
        rules = sorted({f.rule for f in errors})
        err = _plural(len(errors), "error") + (f" ({', '.join(rules)})" if rules else "")
        touched = len({f.path for f in report.findings})
        out = (f"Lint: {err}, {_plural(len(report.warnings), 'warning')} in {touched} of "
               f"{files}")
    if report.hidden:
        out += (f"; {sum(report.hidden.values())} hidden as moot under kgmigrate "
                f"({', '.join(sorted(report.hidden))})")
    return out + "."


def _warnings_by_rule(warnings: list[Finding]) -> list[tuple[str, str | None]]:
    """One line per rule: how many warnings, in how many files, and where the first one is."""
    by_rule: dict[str, list[Finding]] = {}
    for f in warnings:
        by_rule.setdefault(f.rule, []).append(f)
    lines = []
    for rule, found in sorted(by_rule.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        first = found[0]
        files = len({f.path for f in found})
        lines.append((f"{rule}: {_plural(len(found), 'warning')} in {_plural(files, 'file')}, "
                      f"first {first.path}:{first.line}:{first.column}: {first.message}",
                      "yellow"))
    return lines


def print_report(report: LintReport, brief: bool = False) -> None:
    """Print the findings as compilers do, then the summary line.

    `brief`: errors in full, warnings one line per rule (what `up` and `down` show before asking).
    """
    colour = "red" if report.errors else "yellow" if report.findings else "green"
    if brief and report.warnings:
        lines = [line for f in report.errors for line in _finding_lines(f)]
        lines += _warnings_by_rule(report.warnings)
        lines.append((summary(report)[:-1] + "; -v shows every warning.", colour))
    else:
        lines = [line for f in report.findings for line in _finding_lines(f)]
        lines.append((summary(report), colour))
    say_lines(lines)


class UpLint:
    """The lint step of `up` (and `down`): squawk starts as soon as the pending files are known, so it runs
    while kgmigrate parses them; its findings print after the plan, before the apply question."""

    def __init__(self, mode: str, ddl_lock_timeout: float, files: str = "pending migrations",
                 outcome: str = "nothing was applied", verbose: bool = False) -> None:
        self.mode, self.lock_timeout_on, self.verbose = mode, ddl_lock_timeout > 0, verbose
        self.files, self.outcome = files, outcome
        self._run: SquawkRun | None = None
        self._failure: LintUnavailable | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._run is not None:
            self._run.stop()

    def start(self, pending: list, down: bool = False) -> None:
        """Start squawk on the pending files (make_plan calls this before it parses them), or on
        the down files of the chosen ones with `down`."""
        if self.mode == "off" or not pending:
            return
        from ..files.squawk import SquawkRun, read_files

        try:
            self._run = SquawkRun(read_files([mf.down if down else mf.path for mf in pending]))
        except LintUnavailable as exc:
            self._failure = exc
        except MigrationFileError:
            pass  # the plan's own reading reports it, located, right after

    def finish(self) -> None:
        """Print the findings; under --lint=error refuse an error finding (or no lint at all)."""
        if self._run is None and self._failure is None:
            return
        try:
            if self._failure is not None:
                raise self._failure
            report = self._run.report(self.lock_timeout_on)
        except LintUnavailable as exc:
            if self.mode == "error":
                raise LintUnavailable(f"{exc} (--lint=error needs it; --lint=warn applies "
                                      f"without linting)") from None
            warn(f"lint skipped: {exc}")
            return
        finally:
            self._run = None
        say()
        print_report(report, brief=not self.verbose)
        if self.mode == "error" and report.errors:
            raise LintRefused(f"--lint=error: {_plural(len(report.errors), 'error')} in "
                              f"{self.files}; {self.outcome}. Fix them, or ignore one with a "
                              f"`-- squawk-ignore RULE` comment above the statement saying why")


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(q for q in p.rglob("*.sql") if q.is_file()) if p.is_dir() else [p])
    return out


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--pending", is_flag=True,
              help="Lint only the files the database has not applied yet (connects to it).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on errors.")
@ddl_lock_timeout_option
@click.pass_obj
def lint(settings: Settings, paths: tuple[Path, ...], pending: bool, as_json: bool, strict: bool,
         ddl_lock_timeout: float) -> None:
    """Lint migrations with squawk: the named files or folders, else every file in the folder.

    Destructive changes (drop table, column, schema, database) are errors; the rest warnings.
    Exit 1 when a finding is an error (--strict: any finding). squawk's own .squawk.toml and
    `-- squawk-ignore RULE` comments apply.
    """
    from ..files.squawk import folder_files, lint_files, read_files

    if pending and paths:
        raise click.UsageError("give PATHs or --pending, not both")
    if pending:
        from ..apply.plan import make_plan
        from ..apply.session import open_database

        _, conn = open_database(settings, read_only=True)
        with conn:
            plan = make_plan(conn, settings, parse=False)
        chosen = ([mf.path for mf in plan.pending]
                  + [r.file.path for r in plan.repeatables_to_run])
    elif paths:
        chosen = _expand(paths)
    else:
        repeatable = settings.repeatables_path
        chosen = folder_files(settings.migrations_dir) + (
            folder_files(repeatable) if repeatable.is_dir() else [])
    report = lint_files(read_files(chosen), lock_timeout_on=ddl_lock_timeout > 0)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        print_report(report)
    if report.errors or (strict and report.findings):
        raise click.exceptions.Exit(1)
