"""The baseline file (`<migrations-dir>/../00_baseline.sql`): what a squashed one replaces.

`kgmigrate squash --through N` writes the schema after 001..N there, headed by directives among
its leading `--` lines:

    -- kgmigrate:squashed-through 4
    -- kgmigrate:squashed 001 baseline <sha256 of 001_baseline.sql as kgmigrate records it>
    -- kgmigrate:squashed 002 example_add_query_cache <sha256>

A fresh database runs the baseline, then records each squashed file as applied with that
checksum; the files themselves may then be deleted. A baseline without the directives (written by
hand) replaces no file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MigrationFileError
from .directives import directives
from .migrations import MigrationFile
from .versions import version_text, versions_text

THROUGH = "kgmigrate:squashed-through"
SQUASHED = "kgmigrate:squashed"
_CHECKSUM_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class SquashedFile:
    """A migration file a baseline replaces: its version, name and recorded checksum."""

    version: int
    name: str
    checksum: str


@dataclass(frozen=True)
class Baseline:
    """What a baseline file's header says it replaces."""

    path: Path
    squashed_through: int | None  # None: a baseline that replaces no migration file
    squashed: tuple[SquashedFile, ...] = ()

    @property
    def versions(self) -> frozenset[int]:
        """Return the versions a fresh database gets from the baseline (recorded as applied)."""
        return frozenset(f.version for f in self.squashed)

    def covers(self, version: int) -> bool:
        """Tell whether `version` lies in the squashed range (001..N): no file of its own needed."""
        return self.squashed_through is not None and version <= self.squashed_through


def _header(path: Path) -> str:
    """Return the leading lines of `path` that are `--` comments or blank (the whole header)."""
    out = []
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                text = line.strip()
                if text and not text.startswith("--"):
                    break
                out.append(line)
    except OSError as exc:
        raise MigrationFileError(f"{path}: cannot read: {exc.strerror}") from None
    return "".join(out)


def _squashed_file(path: Path, number: int, args: str) -> SquashedFile:
    parts = args.split()
    if (len(parts) != 3 or not parts[0].isdigit() or not _NAME_RE.fullmatch(parts[1])
            or not _CHECKSUM_RE.fullmatch(parts[2])):
        raise MigrationFileError(f"{path}:{number}: bad directive: expected `-- {SQUASHED} "
                                 f"VERSION NAME SHA256`, found `-- {SQUASHED} {args}`")
    return SquashedFile(int(parts[0]), parts[1], parts[2])


def read_baseline(path: Path) -> Baseline | None:
    """Read what the baseline at `path` replaces from its leading comments; None without a file.

    Raises MigrationFileError (PATH:LINE) for a malformed or contradictory directive.
    """
    if not path.is_file():
        return None
    through: int | None = None
    files: dict[int, SquashedFile] = {}
    for d in directives(_header(path)):
        word, args, number = f"kgmigrate:{d.word}", " ".join(d.args), d.line
        if word not in (THROUGH, SQUASHED):
            continue
        if word == THROUGH:
            if not args.isdigit() or through is not None:
                raise MigrationFileError(f"{path}:{number}: bad directive: expected one "
                                         f"`-- {THROUGH} N`, found `-- {word} {args}`")
            through = int(args)
            continue
        found = _squashed_file(path, number, args)
        if found.version in files:
            raise MigrationFileError(f"{path}:{number}: version {version_text(found.version)} "
                                     f"is listed twice")
        files[found.version] = found
    if through is None and files:
        raise MigrationFileError(f"{path}: lists squashed files without `-- {THROUGH} N`")
    beyond = [v for v in files if through is not None and v > through]
    if beyond:
        raise MigrationFileError(f"{path}: lists version(s) {versions_text(sorted(beyond))} "
                                 f"above its `-- {THROUGH} {through}`")
    return Baseline(path, through, tuple(files[v] for v in sorted(files)))


def baseline_header(through: int, files: list[SquashedFile]) -> str:
    """Return the leading comments of a squashed baseline: what it is, and what it replaces."""
    listed = "".join(f"-- {SQUASHED} {version_text(f.version)} {f.name} {f.checksum}\n"
                     for f in files)
    return (f"-- Baseline: the schema (and the rows the migrations seeded) after migrations up to "
            f"{version_text(through)},\n"
            f"-- written by `kgmigrate squash --through {through}`; squash again rather than edit "
            f"it.\n"
            f"-- kgmigrate runs it on a fresh database only, records the files below as applied "
            f"(with these\n"
            f"-- checksums), then applies the migrations above {version_text(through)}.\n"
            f"-- {THROUGH} {through}\n{listed}")


def check_clashes(baseline: Baseline | None, files: list[MigrationFile]) -> None:
    """Refuse a migration file that takes a version the baseline holds under another name.

    Such a file (written after the squash, its number taken from a folder whose squashed files
    were deleted) would never run where the baseline recorded that version.
    """
    held = {f.version: f for f in baseline.squashed} if baseline is not None else {}
    bad = [mf for mf in files if mf.version in held and mf.name != held[mf.version].name]
    if not bad:
        return
    free = max(baseline.squashed_through, *(mf.version for mf in files)) + 1
    raise MigrationFileError("; ".join(
        f"{mf.path} takes version {version_text(mf.version)}, which {baseline.path.name} holds "
        f"({version_text(mf.version)} {held[mf.version].name}, squashed)" for mf in bad)
        + f". Renumber it above {version_text(baseline.squashed_through)}, e.g. "
        f"`git mv {bad[0].path.name} {free:03d}_{bad[0].name}.sql`")
