"""Repeatable files (`schema/repeatable/*.sql`): views, functions, grants re-applied whenever
their content changes, after the versioned files of the same `up`.

Each is named by its file name without `.sql`; its checksum is the versioned files' one
(line ends, trailing blanks and squawk hints do not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MigrationFileError
from .directives import no_transaction
from .migrations import Migration, SqlSource
from .sourcemap import LineMap
from .sqltext import split_statements


@dataclass(frozen=True)
class RepeatableFile(SqlSource):
    """A repeatable file found on disk, read and checksummed once, when first needed."""

    name: str
    path: Path
    down: None = None  # never reversed: the next version of the file replaces it


def discover_repeatables(directory: Path) -> list[RepeatableFile]:
    """Return the repeatable files of `directory` in name order; none when it does not exist."""
    if not directory.is_dir():
        return []
    found = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".sql" and p.is_file())
    names: dict[str, Path] = {}
    for p in found:
        if p.stem.lower() in names:
            raise MigrationFileError(f"{directory}: {names[p.stem.lower()].name} and {p.name} "
                                     f"differ only in case; keep one")
        names[p.stem.lower()] = p
    return [RepeatableFile(p.stem, p) for p in found]


def load_repeatable(rf: RepeatableFile) -> Migration:
    """Read, checksum and parse a repeatable file (version 0: it has none)."""
    lines = LineMap(rf.text)
    return Migration(version=0, name=rf.name, path=rf.path, checksum=rf.checksum,
                     transactional=not no_transaction(rf.text),
                     statements=split_statements(rf.text, rf.path, lines), lines=lines)
