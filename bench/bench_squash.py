"""Time to a ready schema on a fresh database: `up` from a squashed baseline against `up` of the N
files it replaces, and what `squash --through N` itself takes.

Usage: .venv/bin/python bench/bench_squash.py [-n 200] [--repeat 3]

Starts its own PostgreSQL cluster in a /tmp folder with normal durability (fsync on), gives every
`up` a fresh database, and times kgmigrate end to end as a subprocess (interpreter start included).
The two `up` runs take turns, so a noisy moment on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import migrate_lib as lib


def generate(folder: Path, n: int) -> None:
    """Write N migrations: a table, an index and three seeded rows each."""
    folder.mkdir(parents=True)
    for v in range(1, n + 1):
        (folder / f"{v:04d}_bench_{v:04d}.sql").write_text("\n".join(lib.body(v)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="migration files [200]")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each `up` [3]")
    args = parser.parse_args()
    bench = lib.Bench()
    exe = lib.kgmigrate_exe()
    try:
        files = bench.root / "files" / "migrations"
        squashed = bench.root / "squashed" / "migrations"
        generate(files, args.n)
        shutil.copytree(files, squashed)
        scratch = bench.cluster.url("postgres")
        squash_s = lib.timed([[exe, "--migrations-dir", str(squashed), "squash", "--through",
                               str(args.n), "--scratch-url", scratch]])
        for path in squashed.glob("*.sql"):
            path.unlink()
        size = (squashed.parent / "00_baseline.sql").stat().st_size

        def up(folder: Path):
            def run() -> float:
                name, url = bench.fresh_db()
                seconds = lib.timed([[exe, "--database-url", url, "--migrations-dir",
                                      str(folder), "up", "-y", "--lint=off", "--no-snapshot"]])
                bench.check_applied(name, args.n)
                return seconds
            return run

        runs = lib.round_robin({"files": up(files), "baseline": up(squashed)}, args.repeat)
    finally:
        bench.close()
    files_s, base_s = (statistics.median(runs[k]) for k in ("files", "baseline"))
    print(f"squash --through {args.n}: {squash_s:.2f} s (replay on a temporary database, "
          f"pg_dump, write {size / 1000:.0f} kB)")
    print(f"fresh database to a ready schema, median of {args.repeat}:")
    print(f"  up of {args.n} files:            {files_s:.2f} s  "
          f"({' '.join(f'{s:.2f}' for s in runs['files'])})")
    print(f"  up from the squashed baseline: {base_s:.2f} s  "
          f"({' '.join(f'{s:.2f}' for s in runs['baseline'])})")
    print(f"  ratio files / baseline: {files_s / base_s:.1f}x")


if __name__ == "__main__":
    main()
