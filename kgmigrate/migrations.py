"""Find migration files, and read, checksum and parse them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, MigrationFileError
from .sourcemap import LineMap
from .sqltext import (
    Statement,
    has_no_transaction_directive,
    split_statements,
    without_lint_directives,
)

FILENAME_RE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)\.sql$")


@dataclass(frozen=True)
class MigrationFile:
    """A migration file found on disk, not yet read."""

    version: int
    name: str
    path: Path


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


def discover(directory: Path) -> list[MigrationFile]:
    """Return the migration files of `directory` in version order.

    Badly named .sql files and duplicate versions are errors.
    """
    if not directory.is_dir():
        raise ConfigError(f"migrations directory not found: {directory}")
    found: dict[int, MigrationFile] = {}
    bad: list[str] = []
    dupes: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".sql" or not path.is_file():
            continue
        m = FILENAME_RE.match(path.name)
        if not m:
            bad.append(path.name)
            continue
        mf = MigrationFile(int(m.group("version")), m.group("name"), path)
        if mf.version in found:
            dupes.append(f"{found[mf.version].path.name} and {path.name}")
            continue
        found[mf.version] = mf
    problems = []
    if bad:
        problems.append("badly named migration file(s) (expected NNN_name.sql): " + ", ".join(bad))
    if dupes:
        problems.append("duplicate migration version(s): " + "; ".join(dupes))
    if problems:
        raise MigrationFileError(f"{directory}: " + "\n".join(problems))
    return [found[v] for v in sorted(found)]


def load(mf: MigrationFile) -> Migration:
    """Read, checksum and parse one migration file."""
    text = read_text(mf.path).replace("\r\n", "\n").replace("\r", "\n")
    lines = LineMap(text)
    statements = split_statements(text, mf.path, lines)
    return Migration(version=mf.version, name=mf.name, path=mf.path, checksum=checksum(text),
                     transactional=not has_no_transaction_directive(text),
                     statements=statements, lines=lines)


def file_checksum(path: Path) -> str:
    """Return the checksum of a file on disk."""
    return checksum(read_text(path))
