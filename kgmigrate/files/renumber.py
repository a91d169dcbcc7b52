"""Give a pending migration file (and its down file) a new number: `kgmigrate renumber`.

The move is `git mv` when the file is tracked by git, else a plain rename. The `requires`
references to the old number in other pending files follow it, and the pending files that require
it move along after it; an applied file requiring it (its edit would be drift) refuses the whole
move before anything changes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MigrationFileError
from ..settings import Settings
from .graph import Graph, check_graph, provided_by_baseline, resolve_word
from .migrations import DOWN_SUFFIX, FILENAME_RE, MigrationFile, read_sql, survey
from .repeatable import discover_repeatables
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


def read_for_renumber(settings: Settings, which: str) -> tuple[Graph, MigrationFile]:
    """Return the checked graph and the file to move.

    The one problem tolerated is the one renumber fixes: `which` took a number another file
    has (two branches merged), and its down file then looks like the other's.
    """
    directory = settings.migrations_dir
    files, problems = survey(directory)
    path = directory / Path(which).name
    dropped = None
    m = FILENAME_RE.match(path.name)
    if m and path.is_file() and all(f.path != path for f in files):
        down = path.with_name(path.name[:-4] + DOWN_SUFFIX)
        dropped = MigrationFile(int(m.group("version")), m.group("name"), path,
                                down if down.is_file() else None)
        problems = [(p, msg) for p, msg in problems
                    if p not in (path, down) and not msg.startswith("duplicate migration")]
    if problems:
        raise MigrationFileError(f"{directory}: " + "\n".join(msg for _, msg in problems))
    graph = check_graph(files, discover_repeatables(settings.repeatables_path),
                        provided_by_baseline(settings.baseline_path))
    return graph, dropped or find_file(graph, which)


def _new_word(word: str, new: int) -> str:
    """Return `word` (a reference to a version) naming version `new`, written alike."""
    m = FILENAME_RE.match(word if word.lower().endswith(".sql") else word + "_x.sql")
    digits = m.group("version") if m else word
    return f"{new:0{len(digits)}d}" + word[len(digits):]


def _dependents(graph: Graph, mf: MigrationFile, applied: set[int]) -> list[MigrationFile]:
    """Return `mf` and the pending files that require it, directly or not, in number order."""
    moving = {mf.version}
    for other in graph.files:  # number order: a file requires only lower numbers
        if other.version not in applied and moving & set(graph.requires.get(other.version, ())):
            moving.add(other.version)
    return [f for f in graph.files if f.version in moving]


def _plan(graph: Graph, mf: MigrationFile, applied: set[int],
          new: int | None) -> dict[int, int]:
    """Return old -> new version of each file that moves; refuse what cannot follow."""
    taken = {f.version for f in graph.files} | applied | graph.provided
    if mf not in graph.files:  # a duplicate number: what requires that number means the other
        return {mf.version: new or max(taken) + 1}
    if new is not None and new in taken:
        raise MigrationFileError(f"version {version_text(new)} is taken; the next free number is "
                                 f"{version_text(max(taken) + 1)}")
    problems = []
    for other in graph.files:
        if mf.version in graph.requires.get(other.version, ()) and other.version in applied:
            problems.append(f"applied {other.path.name} requires it (line "
                            f"{graph.lines[(other.version, mf.version)]}); editing an applied "
                            f"file is drift")
        elif (new is not None and mf.version in graph.requires.get(other.version, ())
              and other.version < new):
            problems.append(f"{other.path.name} requires it (line "
                            f"{graph.lines[(other.version, mf.version)]}) and is numbered below "
                            f"{version_text(new)}: without NEW both move, in order")
    if problems:
        raise MigrationFileError(f"cannot renumber {mf.path.name}: " + "; ".join(problems)
                                 + ". Nothing was changed.")
    if new is not None:
        return {mf.version: new}
    free = max(taken) + 1
    return {f.version: free + i for i, f in enumerate(_dependents(graph, mf, applied))}


def _rewrite(graph: Graph, moves: dict[int, int]) -> list[tuple[Path, str, str]]:
    """Rewrite the `requires` words naming a moved version in every pending file; return them."""
    done = []
    for other in graph.files:
        edits = []
        for d in other.directives:
            if d.leading and d.word == "requires":
                words = [(w, _new_word(w, moves[t])) for w in d.args
                         if (t := resolve_word(w, graph)) in moves]
                if words:
                    edits.append((d, dict(words)))
        if not edits:
            continue
        text = read_sql(other.path)  # the text the directives' offsets are in
        for d, words in sorted(edits, key=lambda e: -e[0].offset):
            comment = " ".join(words.get(p, p) for p in text[d.offset:d.end].split())
            text = text[:d.offset] + comment + text[d.end:]
            done += [(other.path, old, new) for old, new in words.items()]
        other.path.write_text(text, encoding="utf-8")
    return done


def _in_git(path: Path) -> bool:
    """Tell whether git tracks `path`."""
    try:
        return subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch",
                               path.name], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _move(old_path: Path, new_path: Path, with_git: bool) -> None:
    if with_git:
        subprocess.run(["git", "-C", str(old_path.parent), "mv", old_path.name, new_path.name],
                       check=True, capture_output=True)
    else:
        old_path.rename(new_path)


def renumber(graph: Graph, mf: MigrationFile, applied: dict[int, str],
             new: int | None = None) -> Renumbered:
    """Move pending `mf` (and its down file) to `new`, or the next free number.

    `applied` maps each applied version to its name. Without `new`, the pending files that
    require `mf` move along after it, in their order.
    """
    if applied.get(mf.version) == mf.name:
        raise MigrationFileError(f"{mf.path.name} is applied: a new number would make it pending "
                                 f"again and run it twice. Renumber only pending files.")
    moves = _plan(graph, mf, set(applied), new)
    by_version = {f.version: f for f in graph.files}
    by_version[mf.version] = mf
    done = Renumbered(with_git=_in_git(mf.path))
    done.rewritten = _rewrite(graph, moves) if mf in graph.files else []
    for old, target in moves.items():
        f = by_version[old]
        width = len(FILENAME_RE.match(f.path.name).group("version"))
        stem = f"{target:0{width}d}_{f.name}"
        pairs = [(f.path, f.path.with_name(stem + ".sql"))]
        if f.down is not None:
            pairs.append((f.down, f.down.with_name(stem + DOWN_SUFFIX)))
        for old_path, new_path in pairs:
            _move(old_path, new_path, done.with_git)
            done.moves.append((old_path, new_path))
    moved = dict(done.moves)
    done.rewritten = [(moved.get(p, p), old, word) for p, old, word in done.rewritten]
    return done
