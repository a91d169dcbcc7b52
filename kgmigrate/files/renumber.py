"""Give a pending migration file (and its down file) a new number: `kgmigrate renumber`.

The move is `git mv` when the file is tracked by git, else a plain rename. The `requires`
references to the old number in other pending files follow it; a reference that cannot follow
(an applied file, whose edit would be drift, or a file numbered below the new number, which
may not require a later one) refuses the whole move before anything changes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MigrationFileError
from .directives import Directive
from .graph import Graph, resolve_word
from .migrations import DOWN_SUFFIX, FILENAME_RE, MigrationFile, read_sql
from .versions import version_text


@dataclass
class Renumbered:
    """What `renumber` did: each move (as the git command, or a rename) and each file rewritten."""

    moves: list[tuple[Path, Path]] = field(default_factory=list)
    with_git: bool = False
    rewritten: list[tuple[Path, str, str]] = field(default_factory=list)  # file, old, new word


def find_file(graph: Graph, which: str) -> MigrationFile:
    """Return the migration file named by a path, a file name, or a version."""
    name = Path(which).name
    for mf in graph.files:
        if name in (mf.path.name, mf.path.stem) or (which.isdigit() and int(which) == mf.version):
            return mf
    raise MigrationFileError(f"no migration file {which} in {graph.files[0].path.parent}"
                             if graph.files else f"no migration file {which}")


def _new_word(word: str, old: int, new: int) -> str:
    """Return `word` (a reference to version `old`) naming version `new`, written alike."""
    m = FILENAME_RE.match(word if word.lower().endswith(".sql") else word + "_x.sql")
    digits = m.group("version") if m else word
    return f"{new:0{len(digits)}d}" + word[len(digits):]


def _rewrites(graph: Graph, mf: MigrationFile, new: int,
              applied: set[int]) -> list[tuple[MigrationFile, Directive, str, str]]:
    """Return the requires words to rewrite, or refuse when one cannot follow the move."""
    out, problems = [], []
    for other in graph.files:
        for d in other.directives:
            if not d.leading or d.word != "requires":
                continue
            for word in d.args:
                if resolve_word(word, graph) != mf.version:
                    continue
                if other.version in applied:
                    problems.append(f"applied {other.path.name} requires it (line {d.line}); "
                                    f"editing an applied file is drift")
                elif other.version < new:
                    problems.append(f"{other.path.name} requires it (line {d.line}) and is "
                                    f"numbered below {version_text(new)}: renumber it after")
                else:
                    out.append((other, d, word, _new_word(word, mf.version, new)))
    if problems:
        raise MigrationFileError(f"cannot renumber {mf.path.name}: " + "; ".join(problems)
                                 + ". Nothing was changed.")
    return out


def _in_git(path: Path) -> bool:
    """Tell whether git tracks `path`."""
    try:
        return subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch",
                               path.name], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def renumber(graph: Graph, mf: MigrationFile, applied: set[int],
             new: int | None = None) -> Renumbered:
    """Move pending `mf` (and its down file) to `new`, or the next free number."""
    if mf.version in applied:
        raise MigrationFileError(f"{mf.path.name} is applied: a new number would make it pending "
                                 f"again and run it twice. Renumber only pending files.")
    taken = {f.version for f in graph.files} | applied | graph.provided
    if new is None:
        new = max(taken) + 1
    elif new in taken:
        raise MigrationFileError(f"version {version_text(new)} is taken; the next free number is "
                                 f"{version_text(max(taken) + 1)}")
    edits = _rewrites(graph, mf, new, applied)
    width = len(FILENAME_RE.match(mf.path.name).group("version"))
    stem = f"{new:0{width}d}_{mf.name}"
    moves = [(mf.path, mf.path.with_name(stem + ".sql"))]
    if mf.down is not None:
        moves.append((mf.down, mf.down.with_name(stem + DOWN_SUFFIX)))
    done = Renumbered(with_git=_in_git(mf.path))
    for old_path, new_path in moves:
        if done.with_git:
            subprocess.run(["git", "-C", str(old_path.parent), "mv", old_path.name,
                            new_path.name], check=True, capture_output=True)
        else:
            old_path.rename(new_path)
        done.moves.append((old_path, new_path))
    for other, d, old, word in edits:
        text = read_sql(other.path)  # the text the directive's offsets are in
        comment = " ".join(word if p == old else p for p in text[d.offset:d.end].split())
        other.path.write_text(text[:d.offset] + comment + text[d.end:], encoding="utf-8")
        done.rewritten.append((other.path, old, word))
    return done
