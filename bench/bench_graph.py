"""Time `kgmigrate check` and `graph` on 2000 files, and `up` of 200 files with `requires`
directives against the same files without them.

Usage: .venv/bin/python bench/bench_graph.py [-n 2000] [--up-files 200] [--repeat 5] [--up-repeat 3]

check/graph run on a generated folder in a temporary git repository (its base branch holds all
but the last 10 files, so `check --base` compares every file); `up` gets a fresh database per run
on a cluster with normal durability. Every tool runs as a subprocess (interpreter start included);
`kgmigrate --help` shows what start-up alone costs. Goals: check under 1 s; up with requires
within 5% of up without.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import migrate_lib as lib


def write_files(folder: Path, n: int, requires: bool) -> None:
    """Write n migrations (three statements each); with `requires`, each names up to three
    earlier ones."""
    folder.mkdir(parents=True)
    for v in range(1, n + 1):
        head = f"-- Migration {v:04d}\n"
        if requires and v > 1:
            deps = sorted({max(1, v - k) for k in (1, 7, 31)})
            head += "-- kgmigrate:requires " + " ".join(f"{d:04d}" for d in deps) + "\n"
        (folder / f"{v:04d}_bench_{v:04d}.sql").write_text(head + "\n".join(lib.body(v)[:3])
                                                           + "\n")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


def folder_runs(root: Path, n: int, repeat: int) -> dict[str, list[float]]:
    repo = root / "repo"
    mig = repo / "schema" / "migrations"
    write_files(mig, n, requires=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", *[str(p) for p in sorted(mig.iterdir())[:-10]])
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "branch")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "ten more")
    exe = lib.kgmigrate_exe()
    base = [exe, "--migrations-dir", str(mig)]
    cmds = {
        "kgmigrate --help": [exe, "--help"],
        f"check ({n} files)": [*base, "check"],
        f"check --base main ({n} files)": [*base, "check", "--base", "main"],
        f"graph ({n} files)": [*base, "graph"],
        f"graph --format dot ({n} files)": [*base, "graph", "--format", "dot"],
        f"graph --format mermaid ({n} files)": [*base, "graph", "--format", "mermaid"],
    }
    import os

    here = os.getcwd()
    os.chdir(repo)
    try:
        return lib.round_robin({label: lambda cmd=cmd: lib.timed([cmd])
                                for label, cmd in cmds.items()}, repeat)
    finally:
        os.chdir(here)


def up_runs(root: Path, n: int, repeat: int) -> dict[str, list[float]]:
    dirs = {"up, no requires": root / "plain", "up, with requires": root / "requires"}
    write_files(dirs["up, no requires"], n, requires=False)
    write_files(dirs["up, with requires"], n, requires=True)
    bench = lib.Bench()
    try:
        def run(folder: Path) -> float:
            name, url = bench.fresh_db()
            t = lib.timed([[lib.kgmigrate_exe(), "--database-url", url, "--migrations-dir",
                            str(folder), "--no-baseline", "up", "-y", "--lint=off"]])
            bench.check_applied(name, n)
            return t

        return lib.round_robin({label: lambda d=d: run(d) for label, d in dirs.items()}, repeat)
    finally:
        bench.close()


def show(runs: dict[str, list[float]], ref: str | None = None) -> None:
    med = {label: statistics.median(ts) for label, ts in runs.items()}
    for label, ts in runs.items():
        ratio = f"   {med[label] / med[ref]:5.3f}x {ref}" if ref and label != ref else ""
        print(f"  {label:<36} {med[label]:7.3f} s  (best {min(ts):.3f} s){ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="files for check and graph")
    ap.add_argument("--up-files", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--up-repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kgbench-graph-") as tmp:
        root = Path(tmp)
        runs = folder_runs(root, args.n, args.repeat)
        print(f"check and graph, median of {args.repeat} (goal: check under 1 s):")
        show(runs)
        up = up_runs(root / "up", args.up_files, args.up_repeat)
        print(f"up of {args.up_files} files, median of {args.up_repeat} "
              f"(goal: with requires within 5%):")
        show(up, "up, no requires")


if __name__ == "__main__":
    main()
