"""The dependency graph of migration files: `-- kgmigrate:requires` resolved and checked.

Number order is the spine: without the directive a file depends on nothing beyond the files
numbered below it. A requirement names a version (`012`), a file (`012_users`), or a repeatable
file by name; it must name an existing file (or a version the baseline provides), a lower
number, and form no cycle. A versioned file may not require a repeatable one.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MigrationFileError
from ..settings import Settings
from .baseline import Baseline, read_baseline
from .directives import problems as directive_problems
from .migrations import MigrationFile, discover
from .repeatable import RepeatableFile, discover_repeatables
from .versions import version_text

Ref = int | str  # a version, or a repeatable file's name
_VERSION_WORD = re.compile(r"(?P<version>\d+)(?:_(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*?))?"
                           r"(?:\.sql)?", re.IGNORECASE)
_TIMING = ("a versioned file may not require a repeatable file: its result would depend on deploy "
           "timing (a repeatable file runs after the versioned files of each `up`, and again "
           "whenever it changes)")


class RequiresError(MigrationFileError):
    """A `requires` directive names no file, a later number, a repeatable file, or a cycle."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the files, located: PATH:LINE: message."""

    path: Path
    line: int
    message: str
    kind: str = "requires"  # or "directive": a directive kgmigrate cannot honour as written

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Graph:
    """Every file and what it requires, resolved; requirements on provided versions included."""

    files: list[MigrationFile]
    repeatables: list[RepeatableFile] = field(default_factory=list)  # name order
    provided: frozenset[int] = frozenset()  # versions the baseline stands for (squashed)
    requires: dict[Ref, list[Ref]] = field(default_factory=dict)
    lines: dict[tuple[Ref, Ref], int] = field(default_factory=dict)  # where each edge is written

    def path_of(self, ref: Ref) -> Path | None:
        """Return the file of a version or repeatable name; None for a provided version."""
        for f in (self.files if isinstance(ref, int) else self.repeatables):
            if (f.version if isinstance(ref, int) else f.name) == ref:
                return f.path
        return None

    def required_by(self, target: Ref) -> list[Ref]:
        """Return the files that require `target` directly."""
        return [src for src, targets in self.requires.items() if target in targets]

    def repeatable_order(self) -> list[str]:
        """Return the repeatable files' names in run order: name order unless `requires` says."""
        names = {r.name for r in self.repeatables}
        after = {n: [t for t in self.requires.get(n, ()) if isinstance(t, str)] for n in names}
        waiting = {n: len(ts) for n, ts in after.items()}
        ready = [n for n, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            n = heapq.heappop(ready)
            out.append(n)
            for m, ts in after.items():
                if n in ts:
                    waiting[m] -= 1
                    if waiting[m] == 0:
                        heapq.heappush(ready, m)
        return out


def provided_by_baseline(baseline: Path) -> frozenset[int]:
    """Return the versions a squashed baseline replaces, which need no file of their own."""
    return provided_by(read_baseline(baseline))


def provided_by(squash: Baseline | None) -> frozenset[int]:
    """Return the versions `squash` (a baseline already read; None: no file) replaces."""
    return squash.versions if squash is not None else frozenset()


def _resolve(word: str, by_version: dict[int, MigrationFile], repeatables: dict[str, object],
             provided: frozenset[int]) -> tuple[Ref | None, str | None]:
    """Return what `word` names, or None and why not."""
    bare = word[:-4] if word.lower().endswith(".sql") else word
    m = _VERSION_WORD.fullmatch(word)
    if m and not (bare in repeatables and int(m.group("version")) not in by_version):
        v = int(m.group("version"))
        mf = by_version.get(v)
        if mf is not None:
            if m.group("name") and m.group("name") != mf.name:
                return None, (f"requires {word}, but version {version_text(v)} is "
                              f"{mf.path.name}")
            return v, None
        if v in provided:
            return v, None
        return None, f"requires {word}, which names no migration file"
    if bare in repeatables:
        return bare, None
    return None, f"requires {word}, which names no migration file nor repeatable file"


def resolve_word(word: str, graph: Graph) -> Ref | None:
    """Return the version or repeatable name a `requires` word names in `graph`; None if none."""
    return _resolve(word, {mf.version: mf for mf in graph.files},
                    {r.name: r for r in graph.repeatables}, graph.provided)[0]


def analyse(files: list[MigrationFile], repeatables: Iterable[RepeatableFile] = (),
            provided: frozenset[int] = frozenset()) -> tuple[Graph, list[Problem]]:
    """Resolve every file's `requires`; return the graph and what is wrong with it."""
    reps = {r.name: r for r in repeatables}
    graph = Graph(files, [reps[n] for n in sorted(reps)], provided)
    by_version = {mf.version: mf for mf in files}
    found: list[Problem] = []
    for node, f in [*((mf.version, mf) for mf in files), *reps.items()]:
        leading = [d for d in f.directives if d.leading]
        found += [Problem(f.path, line, msg, "directive")
                  for line, msg in directive_problems(leading)]
        for d in leading:
            if d.word != "requires":
                continue
            for word in d.args:
                target, why = _resolve(word, by_version, reps, provided)
                if target is None:
                    found.append(Problem(f.path, d.line, why))
                elif isinstance(node, int) and isinstance(target, str):
                    found.append(Problem(f.path, d.line, f"requires {word}: {_TIMING}"))
                elif isinstance(node, int) and target >= node:
                    found.append(Problem(f.path, d.line, (
                        f"requires {word}, which is not numbered below it: a file may only "
                        f"require files that run before it (renumber one of them)")
                        if target != node else f"requires {word}, itself"))
                else:
                    graph.requires.setdefault(node, []).append(target)
                    graph.lines[(node, target)] = d.line
    found += _cycles(graph)
    found.sort(key=lambda p: (str(p.path), p.line))
    return graph, found


def _cycles(graph: Graph) -> list[Problem]:
    """Return one Problem per cycle among repeatable files (versions cannot form one)."""
    names = [r.name for r in graph.repeatables]
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    out: list[Problem] = []

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for t in graph.requires.get(n, ()):
            if not isinstance(t, str):
                continue
            if state.get(t) == 1:
                chain = [*path, n]
                loop = [*chain[chain.index(t):], t]
                out.append(Problem(graph.path_of(n), graph.lines[(n, t)],
                                   f"requires {t}: a cycle ({' -> '.join(loop)})"))
            elif t not in state:
                visit(t, path + [n])
        state[n] = 2

    for n in names:
        if n not in state:
            visit(n, [])
    return out


def check_graph(files: list[MigrationFile], repeatables: Iterable[RepeatableFile] = (),
                provided: frozenset[int] = frozenset()) -> Graph:
    """Return the graph; raise RequiresError (exit 2) naming every file and line that is wrong."""
    graph, found = analyse(files, repeatables, provided)
    if found:
        raise RequiresError("bad `kgmigrate:` directive(s); nothing was run:\n"
                            + "\n".join(map(str, found)))
    return graph


def read_graph(settings: Settings, provided: frozenset[int] | None = None) -> Graph:
    """Discover the files of `settings` and check their graph (RequiresError, exit 2).

    `provided`: the versions the baseline replaces, when the caller has read the baseline already.
    """
    files = discover(settings.migrations_dir)
    if provided is None:
        provided = provided_by_baseline(settings.baseline_path)
    return check_graph(files, discover_repeatables(settings.repeatables_path), provided)
