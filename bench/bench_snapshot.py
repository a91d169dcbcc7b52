"""Benchmark `kgmigrate snapshot` / `restore` against raw pg_dump / pg_restore / psql.

Builds a database of about --size-mb in a throwaway cluster (the project's schema, filled with
generate_series: JSONB audit and cache rows, text, and float arrays like embeddings), then times
each raw tool and the kgmigrate command for the same format and compression, alternating them,
and prints medians and ratios. Also prints a size/time table for the custom format's gzip levels
(pg_dump 15 offers gzip only; lz4/zstd arrive in 16).

    .venv/bin/python bench/bench_snapshot.py --size-mb 420 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import snapshot_lib as lib
from kgmigrate.postgres.localdb import LocalCluster
from kgmigrate.postgres.programs import find_binary
from kgmigrate.snapshot.take import DEFAULT_COMPRESSION


def compare(label: str, raw, kg, runs: int) -> None:
    """Time raw() and kg() alternately `runs` times; print best and median walls, ratios, CPU.

    The machine may be shared: the best run is the least disturbed one, and the client-side CPU
    (kgmigrate's Python plus the tools it runs, vs the tool alone) is immune to other load.
    """
    walls: dict[str, list[float]] = {"raw": [], "kg": []}
    cpus: dict[str, list[float]] = {"raw": [], "kg": []}
    for i in range(runs):
        order = [("raw", raw), ("kg", kg)] if i % 2 == 0 else [("kg", kg), ("raw", raw)]
        for key, fn in order:
            walls[key].append(fn())
            cpus[key].append(lib.CPU[-1])
    rb, kb = min(walls["raw"]), min(walls["kg"])
    rm, km = statistics.median(walls["raw"]), statistics.median(walls["kg"])
    rc, kc = statistics.median(cpus["raw"]), statistics.median(cpus["kg"])
    print(f"{label}\n    best:   raw {rb:6.2f} s  kgmigrate {kb:6.2f} s  ratio {kb / rb:5.2f}x"
          f"\n    median: raw {rm:6.2f} s  kgmigrate {km:6.2f} s  ratio {km / rm:5.2f}x"
          f"\n    client CPU: raw {rc:5.2f} s  kgmigrate {kc:5.2f} s  (+{kc - rc:.2f} s)"
          f"\n    runs raw {' '.join(f'{t:.2f}' for t in walls['raw'])}; "
          f"kg {' '.join(f'{t:.2f}' for t in walls['kg'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=420)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--levels", default="0,1,3,6", help="gzip levels for the compression table")
    ap.add_argument("--fsync", action="store_true", help="run the server with fsync on")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="kgbench-snap-", dir="/tmp"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "pg", dbname="postgres", fast=not args.fsync)
    work = root / "files"
    work.mkdir()
    try:
        cluster.start()
        url = lib.build(cluster, args.size_mb)
        pg_dump, pg_restore, psql = (str(find_binary(n, 15)) for n in
                                     ("pg_dump", "pg_restore", "psql"))
        kg = [sys.executable, "-m", "kgmigrate", "--backups-dir", str(work)]
        z = DEFAULT_COMPRESSION
        print(f"tools: {pg_dump}; kgmigrate default compression -Z{z}")

        print("\n== custom format, gzip levels (pg_dump -Fc -Z<level>, pg_restore -1) ==")
        for level in [int(x) for x in args.levels.split(",")]:
            out = work / f"z{level}.dump"
            t_dump = lib.run([pg_dump, "-Fc", f"-Z{level}", "-f", str(out), f"--dbname={url}"])
            target = lib.fresh_db(cluster, "restore_raw")
            t_rest = lib.run([pg_restore, "-1", f"--dbname={target}", str(out)])
            print(f"-Z{level}: {out.stat().st_size / 1e6:7.1f} MB   dump {t_dump:6.2f} s   "
                  f"restore {t_rest:6.2f} s")
            out.unlink()

        def kg_snap(fmt: str, name: str):
            def go():
                (work / name).unlink(missing_ok=True)
                (work / f"{name}.json").unlink(missing_ok=True)
                return lib.run([*kg, "--database-url", url, "snapshot", "-q", "--format", fmt,
                            "-o", str(work / name)])
            return go

        def raw_dump(args_: list[str], name: str):
            return lambda: lib.run([pg_dump, *args_, "-f", str(work / name), f"--dbname={url}"])

        print(f"\n== snapshot (median of {args.runs}) ==")
        compare(f"custom -Z{z}: pg_dump -Fc vs snapshot", raw_dump(["-Fc", f"-Z{z}"], "raw.dump"),
                kg_snap("custom", "kg.dump"), args.runs)
        compare("plain: pg_dump -Fp vs snapshot --format plain", raw_dump(["-Fp"], "raw.sql"),
                kg_snap("plain", "kg.sql"), args.runs)
        print(f"sizes: custom raw {(work / 'raw.dump').stat().st_size / 1e6:.1f} MB, kgmigrate "
              f"{(work / 'kg.dump').stat().st_size / 1e6:.1f} MB; plain "
              f"{(work / 'kg.sql').stat().st_size / 1e6:.1f} MB")

        def raw_restore(argv_fn):
            return lambda: lib.run(argv_fn(lib.fresh_db(cluster, "restore_raw")))

        def kg_restore(name: str, populated: bool):
            def go():
                target = url if populated else lib.fresh_db(cluster, "restore_kg")
                return lib.run([*kg, "--database-url", target, "restore", "-y", str(work / name)])
            return go

        print(f"\n== restore into an empty database (median of {args.runs}) ==")
        compare(f"custom -Z{z}: pg_restore -1 vs restore",
                raw_restore(lambda t: [pg_restore, "-1", f"--dbname={t}", str(work / "raw.dump")]),
                kg_restore("kg.dump", False), args.runs)
        compare("plain: psql -1 -f vs restore",
                raw_restore(lambda t: [psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1",
                                       f"--dbname={t}", "-f", str(work / "raw.sql")]),
                kg_restore("kg.sql", False), args.runs)
        print(f"\n== restore over the populated database (median of {args.runs}) ==")
        compare(f"custom -Z{z}: pg_restore -1 --clean --if-exists vs restore",
                lambda: lib.run([pg_restore, "-1", "--clean", "--if-exists", f"--dbname={url}",
                             str(work / "raw.dump")]),
                kg_restore("kg.dump", True), args.runs)
    finally:
        try:
            cluster.stop(mode="immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
