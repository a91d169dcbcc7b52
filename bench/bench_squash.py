"""Time to a ready schema on a fresh database: `up` from a squashed baseline against `up` of the N
files it replaces, and what `squash --through N` itself takes.

Usage: .venv/bin/python bench/bench_squash.py [-n 200] [--repeat 3] [--backfill 10000]

Two histories: files that each add a table (the server's work is the same either way, so the
baseline saves only kgmigrate's per-file cost and the commits), and the same files each also
updating every row of one table (a backfill the baseline replaces by its final rows).

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


def generate(folder: Path, n: int, backfill: int) -> None:
    """Write N migrations: a table, an index and three seeded rows each; with `backfill`, the
    first also seeds that many rows into a table every file then updates (a data backfill)."""
    folder.mkdir(parents=True)
    for v in range(1, n + 1):
        extra = []
        if backfill and v == 1:
            extra.append(f"CREATE TABLE bench_events (id int PRIMARY KEY, n int NOT NULL);\n"
                         f"INSERT INTO bench_events SELECT g, 0 FROM generate_series(1, {backfill}) g;")
        if backfill:
            extra.append("UPDATE bench_events SET n = n + 1;")
        (folder / f"{v:04d}_bench_{v:04d}.sql").write_text("\n".join(lib.body(v) + extra) + "\n")


def compare(bench: lib.Bench, n: int, backfill: int, repeat: int) -> None:
    """Squash N generated files, then time `up` of the files against `up` from the baseline."""
    exe = lib.kgmigrate_exe()
    root = bench.root / f"backfill{backfill}"
    files, squashed = root / "files" / "migrations", root / "squashed" / "migrations"
    generate(files, n, backfill)
    shutil.copytree(files, squashed)
    squash_s = lib.timed([[exe, "--migrations-dir", str(squashed), "squash", "--through", str(n),
                           "--scratch-url", bench.cluster.url("postgres")]])
    for path in squashed.glob("*.sql"):
        path.unlink()
    size = (squashed.parent / "00_baseline.sql").stat().st_size

    def up(folder: Path):
        def run() -> float:
            name, url = bench.fresh_db()
            seconds = lib.timed([[exe, "--database-url", url, "--migrations-dir", str(folder),
                                  "up", "-y", "--lint=off", "--no-snapshot"]])
            bench.check_applied(name, n)
            return seconds
        return run

    runs = lib.round_robin({"files": up(files), "baseline": up(squashed)}, repeat)
    files_s, base_s = (statistics.median(runs[k]) for k in ("files", "baseline"))
    what = f"{n} files (table, index, 3 rows each)" + (
        f", each also updating all {backfill} rows of one table" if backfill else "")
    print(f"{what}:")
    print(f"  squash --through {n}: {squash_s:.2f} s (replay on a temporary database, pg_dump, "
          f"write {size / 1000:.0f} kB)")
    print(f"  fresh database to a ready schema, median of {repeat}:")
    print(f"    up of the {n} files:           {files_s:.2f} s  "
          f"({' '.join(f'{s:.2f}' for s in runs['files'])})")
    print(f"    up from the squashed baseline: {base_s:.2f} s  "
          f"({' '.join(f'{s:.2f}' for s in runs['baseline'])})")
    print(f"    ratio files / baseline: {files_s / base_s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="migration files [200]")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each `up` [3]")
    parser.add_argument("--backfill", type=int, default=10000,
                        help="rows of the table every file updates, in the second history "
                             "[10000]; 0 skips it")
    args = parser.parse_args()
    bench = lib.Bench()
    try:
        for backfill in sorted({0, args.backfill}):
            compare(bench, args.n, backfill, args.repeat)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
