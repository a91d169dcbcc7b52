"""Find migration files, and read, checksum and parse them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import ConfigError, MigrationFileError
from .directives import Directive, directives, no_transaction
from .sourcemap import LineMap
from .sqltext import (
    Statement,
    split_statements,
    without_lint_directives,
)
from .versions import version_text

FILENAME_RE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)\.sql$")
DOWN_SUFFIX = ".down.sql"  # NNN_name.down.sql reverses NNN_name.sql (golang-migrate's convention)


class SqlSource:
    """A SQL file kgmigrate runs (at `self.path`): its text, checksum and directives, each read
    once, when first needed, and remembered: a run works from the files it discovered, so the
    text it checks is the text it runs and records."""

    path: Path

    @cached_property
    def text(self) -> str:
        """Return the file's text as it is parsed and run (read_sql)."""
        return read_sql(self.path)

    @cached_property
    def checksum(self) -> str:
        """Return the file's checksum, the one recorded when it is applied."""
        return checksum(self.text)

    @cached_property
    def directives(self) -> list[Directive]:
        """Return the file's `-- kgmigrate:` directives (files/directives.py)."""
        return directives(self.text)


@dataclass(frozen=True)
class MigrationFile(SqlSource):
    """A migration file found on disk, and its down file (read once too)."""

    version: int
    name: str
    path: Path
    down: Path | None = None  # the companion NNN_name.down.sql, when there is one

    @cached_property
    def down_text(self) -> str | None:
        """Return the down file's text as it is parsed and run; None without a down file."""
        return None if self.down is None else read_sql(self.down)

    @cached_property
    def down_checksum(self) -> str | None:
        """Return the down file's checksum; None without a down file."""
        return None if self.down_text is None else checksum(self.down_text)


@dataclass(frozen=True)
class Migration:
    """A migration read, checksummed and parsed."""

    version: int
    name: str
    path: Path
    checksum: str
    transactional: bool
    statements: list[Statement] = field(repr=False)
    lines: LineMap = field(repr=False, compare=False)


def normalize(text: str) -> str:
    """Return `text` with CRLF/CR as LF, trailing whitespace and trailing blank lines dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def checksum(text: str) -> str:
    """Return the sha256 of the normalised text: re-saving on another platform is not drift.

    squawk directives among the leading comments do not count (sqltext.without_lint_directives).
    """
    return hashlib.sha256(without_lint_directives(normalize(text)).encode("utf-8")).hexdigest()


def read_text(path: Path) -> str:
    """Read a SQL file as UTF-8 (a BOM is dropped), with a clear error when it is not."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise MigrationFileError(f"{path}: cannot read: {exc.strerror}") from None


def read_sql(path: Path) -> str:
    """Read a SQL file (read_text) with its line ends as LF, the text kgmigrate parses and runs."""
    return read_text(path).replace("\r\n", "\n").replace("\r", "\n")


def _renumber_hint(found: dict[int, MigrationFile], dupes: list[tuple[Path, Path]]) -> str:
    """Say how to renumber the later of two files that took the same version (two branches)."""
    free = max(found) + 1
    out = []
    for _first, second in dupes:
        m = FILENAME_RE.match(second.name)
        width = len(m.group("version"))
        new = f"{free:0{width}d}_{m.group('name')}"
        out.append(f"git mv {second.name} {new}.sql")
        if second.with_name(f"{second.name[:-4]}{DOWN_SUFFIX}").exists():
            out.append(f"git mv {second.name[:-4]}{DOWN_SUFFIX} {new}{DOWN_SUFFIX}")
        free += 1
    return ("two branches took the same number: give the one merged last the next free "
            f"number (`kgmigrate renumber {dupes[0][1].name}`), e.g. " + "; ".join(out)
            + " (a file already applied somewhere keeps its number: renumber the other)")


def discover(directory: Path) -> list[MigrationFile]:
    """Return the migration files of `directory` in version order, each with its down file.

    Badly named .sql files, duplicate versions and down files without their up file are errors.
    """
    files, problems = survey(directory)
    if problems:
        raise MigrationFileError(f"{directory}: " + "\n".join(msg for _, msg in problems))
    return files


def survey(directory: Path) -> tuple[list[MigrationFile], list[tuple[Path, str]]]:
    """Return the well-formed migration files of `directory` and what is wrong with the rest.

    Each problem comes with the file it is about (the first, when it is about several).
    """
    if not directory.is_dir():
        raise ConfigError(f"migrations directory not found: {directory}")
    found: dict[int, MigrationFile] = {}
    downs: dict[int, list[Path]] = {}
    bad: list[str] = []
    dupes: list[tuple[Path, Path]] = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".sql" or not path.is_file():
            continue
        down = path.name.lower().endswith(DOWN_SUFFIX)
        m = FILENAME_RE.match(path.name[:-len(DOWN_SUFFIX)] + ".sql" if down else path.name)
        if not m:
            bad.append(path.name)
        elif down:
            downs.setdefault(int(m.group("version")), []).append(path)
        elif int(m.group("version")) in found:
            dupes.append((found[int(m.group("version"))].path, path))
        else:
            found[int(m.group("version"))] = MigrationFile(int(m.group("version")),
                                                           m.group("name"), path)
    problems: list[tuple[Path, str]] = []
    if bad:
        reversal = any(b.lower().endswith(DOWN_SUFFIX) for b in bad)
        problems.append((directory / bad[0], "badly named migration file(s) (expected NNN_name.sql): " + ", ".join(bad)
                        + ("; a reversal is named NNN_name.down.sql" if reversal else "")))
    if dupes:
        problems.append((dupes[0][1], "duplicate migration version(s): "
                         + "; ".join(f"{a.name} and {b.name}" for a, b in dupes)
                         + f". {_renumber_hint(found, dupes)}"))
    for version, paths in sorted(downs.items()):
        up = found.get(version)
        if len(paths) > 1:
            problems.append((paths[1], f"two down files for version {version}: "
                             + " and ".join(p.name for p in paths) + "; keep one"))
        elif up is None:
            problems.append((paths[0], f"down file without its migration: {paths[0].name} "
                                       f"(no {paths[0].name[:-len(DOWN_SUFFIX)]}.sql)"))
        elif paths[0].name[:-len(DOWN_SUFFIX)] != up.path.name[:-4]:
            problems.append((paths[0], f"down file {paths[0].name} does not match its migration "
                                       f"{up.path.name}: name it {up.path.name[:-4]}"
                                       f"{DOWN_SUFFIX}"))
        else:
            found[version] = MigrationFile(up.version, up.name, up.path, paths[0])
    return [found[v] for v in sorted(found)], problems


def load(mf: MigrationFile, down: bool = False) -> Migration:
    """Read, checksum and parse one migration file (its down file with `down`)."""
    path = mf.down if down else mf.path
    if path is None:
        raise MigrationFileError(f"migration {version_text(mf.version)} ({mf.name}) has no down "
                                 f"file")
    text = mf.down_text if down else mf.text
    lines = LineMap(text)
    statements = split_statements(text, path, lines)
    return Migration(version=mf.version, name=mf.name, path=path,
                     checksum=mf.down_checksum if down else mf.checksum,
                     transactional=not no_transaction(text),
                     statements=statements, lines=lines)


def file_checksum(path: Path) -> str:
    """Return the checksum kgmigrate records for a file on disk."""
    return checksum(read_text(path))
