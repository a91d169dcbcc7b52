"""`new`: write the next migration file (and its down file) from a name, never overwriting."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from ..errors import MigrationFileError
from .migrations import DOWN_SUFFIX, FILENAME_RE, discover

DEFAULT_WIDTH = 3


def slugify(name: str) -> str:
    """Return `name` as a file name part: "Add session notes" -> "add_session_notes"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def next_version(directory: Path, taken: int = 0) -> tuple[int, int]:
    """Return the next free version and the width the existing files use (3 when none).

    `taken`: the highest version held elsewhere (a squashed baseline's), never handed out again.
    """
    files = discover(directory)  # bad names and duplicate versions stop here too
    if not files:
        return taken + 1, DEFAULT_WIDTH
    width = max(len(FILENAME_RE.match(mf.path.name).group("version")) for mf in files)
    return max(files[-1].version, taken) + 1, width


def up_text(version: str, slug: str, no_transaction: bool) -> str:
    """Return the new file's text: the leading comment block schema/migrations/README.md asks for."""
    directive = "-- kgmigrate: no-transaction\n" if no_transaction else ""
    return (f"-- Migration {version}: {slug}\n"
            f"-- Why: \n"
            f"{directive}\n")


def down_text(version: str, slug: str, no_transaction: bool) -> str:
    """Return the new down file's text."""
    directive = "-- kgmigrate: no-transaction\n" if no_transaction else ""
    return (f"-- Reverses migration {version}: {slug}\n"
            f"-- Undo exactly what {version}_{slug}.sql does, newest change first. Leave this file\n"
            f"-- out when undoing would destroy data that cannot come back.\n"
            f"{directive}\n")


def create(directory: Path, name: str, down: bool = False,
           no_transaction: bool = False, taken: int = 0) -> list[Path]:
    """Create `NNN_slug.sql` (and `NNN_slug.down.sql`) with the next free number; return them.

    Versions up to `taken` are never used (next_version). Raises ValueError for a name that
    slugifies to nothing; never overwrites a file.
    """
    slug = slugify(name)
    if not slug:
        raise ValueError(f"{name!r} has no letters or digits to name a file with")
    number, width = next_version(directory, taken)
    version = f"{number:0{width}d}"
    up = directory / f"{version}_{slug}.sql"
    paths = [(up, up_text(version, slug, no_transaction))]
    if down:
        paths.append((directory / f"{version}_{slug}{DOWN_SUFFIX}",
                      down_text(version, slug, no_transaction)))
    check_name_length(directory, [p for p, _ in paths])
    written: list[Path] = []
    try:
        for path, text in paths:
            with path.open("x", encoding="utf-8") as fh:  # "x": never overwrite
                fh.write(text)
            written.append(path)
    except OSError as exc:  # both files or neither
        for path in written:
            path.unlink(missing_ok=True)
        what = (f"{exc.filename} already exists" if isinstance(exc, FileExistsError)
                else f"cannot write {path}: {exc.strerror}")
        raise MigrationFileError(f"{what}; nothing was written") from None
    return written


def check_name_length(directory: Path, paths: list[Path]) -> None:
    """Raise ValueError when a file name is longer than the file system allows (NAME_MAX bytes)."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255  # what every common Linux file system allows
    longest = max(paths, key=lambda p: len(os.fsencode(p.name)))
    size = len(os.fsencode(longest.name))
    if size > limit:
        raise ValueError(f"the name is too long: {longest.name[:40]}... would be {size} bytes, "
                         f"and file names in {directory} may have at most {limit}; shorten it "
                         f"by {size - limit} character(s)")
