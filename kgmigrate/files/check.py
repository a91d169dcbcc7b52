"""`kgmigrate check`: what is wrong with the migration files, found without a database.

The folder alone: badly named, duplicate or orphaned files, directives kgmigrate cannot honour,
`requires` errors. Against a base git ref: files added on this branch numbered at or below the
base's highest (they will run out of order wherever the base is deployed), files the base has
that were edited (drift found before a deploy, not by it) or deleted. Optionally squawk's lint
of the files new relative to the base.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .gitbase import files_at, fork_point
from .graph import analyse
from .migrations import DOWN_SUFFIX, FILENAME_RE, MigrationFile, checksum, survey
from .repeatable import RepeatableFile, discover_repeatables
from .versions import version_text


@dataclass(frozen=True)
class Finding:
    """One thing to fix, located: kind is files, directive, requires, out-of-order, drift,
    deleted or lint."""

    path: Path
    line: int
    kind: str
    message: str
    severity: str = "error"  # lint warnings are "warning"

    def as_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


@dataclass
class CheckResult:
    """Every finding, and how many files were looked at."""

    findings: list[Finding]
    files: int
    base: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def _folder(directory: Path, repeatables: list[RepeatableFile],
            provided: frozenset[int]) -> tuple[list[MigrationFile], list[Finding]]:
    files, problems = survey(directory)
    found = [Finding(path, 1, "files", msg) for path, msg in problems]
    _, graph_problems = analyse(files, repeatables, provided)
    found += [Finding(p.path, p.line, p.kind, p.message) for p in graph_problems]
    for mf in [*files, *repeatables]:
        found += [Finding(mf.path, d.line, "directive",
                          f"`-- kgmigrate:{d.word}` after the first statement has no effect: "
                          f"directives go in the file's leading comments")
                  for d in mf.directives if not d.leading]
    return files, found


def _against_base(directory: Path, files: list[MigrationFile], ref: str,
                  provided: frozenset[int]) -> tuple[list[Finding], list[Path]]:
    """Return the findings against `ref`, and the files new relative to it.

    What this branch added, edited or deleted is relative to where it left `ref` (its merge
    base; the same as `ref` in a pull request's merge checkout); the highest number is `ref`'s.
    """
    head = files_at(directory, ref)
    fork = fork_point(directory, ref)
    base = head if fork is None else files_at(directory, fork)
    versions = _versions(base)
    highest_at = _versions(head)
    found: list[Finding] = []
    new: list[Path] = []
    highest = max(highest_at.values(), default=None)
    top = max(highest_at, key=highest_at.get) if highest_at else None
    for mf in files:
        if mf.path.name not in base:
            new.append(mf.path)
            if highest is not None and mf.version <= highest:
                found.append(Finding(mf.path, 1, "out-of-order", (
                    f"{mf.path.name} is new on this branch but numbered at or below {top}, "
                    f"the highest in {ref}: it will run out of order on every database that has "
                    f"{ref}'s files; renumber it (`kgmigrate renumber {mf.path.name}`)")))
        elif checksum(base[mf.path.name]) != mf.checksum:
            found.append(Finding(mf.path, 1, "drift", (
                f"{mf.path.name} was edited relative to {ref}, where it may be applied already: "
                f"databases that ran it will refuse the edit as drift; restore it and put the "
                f"change in a new migration")))
        if mf.down is not None and mf.down.name not in base:
            new.append(mf.down)
    on_disk = {mf.path.name for mf in files}
    for name, v in sorted(versions.items(), key=lambda nv: nv[1]):
        if name not in on_disk and v not in provided:
            found.append(Finding(directory / name, 1, "deleted", (
                f"{name} is in {ref} but deleted on this branch: databases that applied "
                f"version {version_text(v)} will report it without a file")))
    return found, new


def _versions(names) -> dict[str, int]:
    """Return {file name: version} of the up files among `names`."""
    ups = {n: FILENAME_RE.match(n) for n in names if not n.lower().endswith(DOWN_SUFFIX)}
    return {n: int(m.group("version")) for n, m in ups.items() if m}


def _lint(paths: list[Path]) -> list[Finding]:
    """Return squawk's findings on `paths` (the rules and severities of `kgmigrate lint`)."""
    if not paths:
        return []
    from .squawk import lint_files, read_files

    report = lint_files(read_files(paths))
    return [Finding(Path(f.path), f.line, "lint", f"{f.rule}: {f.message}", f.severity)
            for f in report.findings]


def check(directory: Path, base: str | None = None, lint: bool = False,
          provided: frozenset[int] = frozenset(),
          repeatable_dir: Path | None = None) -> CheckResult:
    """Check the migrations folder (against the git ref `base`); lint new files with `lint`.

    `provided`: the versions the baseline stands for (squashed), whose files may be gone.
    Repeatable files take part in the `requires` checks, and are linted when new or changed.
    """
    repeatables = discover_repeatables(repeatable_dir) if repeatable_dir else []
    files, found = _folder(directory, repeatables, provided)
    new = [p for mf in files for p in (mf.path, mf.down) if p is not None]
    new += [r.path for r in repeatables]
    if base is not None:
        against, new = _against_base(directory, files, base, provided)
        found += against
        if repeatables:
            before = files_at(repeatable_dir, fork_point(repeatable_dir, base) or base)
            new += [r.path for r in repeatables
                    if r.path.name not in before or checksum(before[r.path.name]) != r.checksum]
    if lint:
        found += _lint(sorted(new))
    found.sort(key=lambda f: (str(f.path), f.line))
    return CheckResult(found, len(files), base)
