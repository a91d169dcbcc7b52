"""What the plain-dump check before `kgmigrate restore` costs on a big dump.

Builds a database of about --size-mb in a throwaway cluster (snapshot_lib's data: the project's
schema, JSONB, text, float arrays), dumps it as plain SQL twice (pg_dump's COPY format, and
`--inserts`, one INSERT a row, the worst case for a lexer), then times, each in a fresh process,
alternating, median of --runs: the check (kgmigrate.snapshot.manifest.plain_hazard), a sha256 of
the same file (what reading it costs), and once, for scale, psql restoring it in one transaction. Prints
seconds, MB/s, the ratio to sha256 and each process's peak memory.

    .venv/bin/python bench/bench_restore_check.py --size-mb 420 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import snapshot_lib as lib
from kgmigrate.postgres.localdb import LocalCluster
from kgmigrate.postgres.programs import find_binary

# Each child prints its answer and its own peak memory (ru_maxrss, kB on Linux).
_CHILD = ("import resource, sys; from kgmigrate.snapshot.manifest import {fn}; out = {fn}(sys.argv[1]); "
          "print(out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
CHECK, HASH = _CHILD.format(fn="plain_hazard"), _CHILD.format(fn="file_sha256")


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Run a child; return its wall time, its peak memory in MB and its output."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    answer, _, peak_kb = proc.stdout.strip().rpartition(" ")
    return seconds, int(peak_kb) / 1024 if peak_kb.isdigit() else float("nan"), answer


def timed_plain(argv: list[str]) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return time.perf_counter() - t0, float("nan"), ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=420)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kgbench-check-", dir="/tmp"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "pg", dbname="postgres", fast=True)
    try:
        cluster.start()
        url = lib.build(cluster, args.size_mb)
        pg_dump, psql = str(find_binary("pg_dump", 15)), str(find_binary("psql", 15))
        dumps = {"COPY": root / "copy.sql", "--inserts": root / "inserts.sql"}
        subprocess.run([pg_dump, "-d", url, "-f", str(dumps["COPY"])], check=True)
        subprocess.run([pg_dump, "--inserts", "-d", url, "-f", str(dumps["--inserts"])],
                       check=True)
        py = sys.executable
        for label, path in dumps.items():
            size = path.stat().st_size / 1e6
            checks, hashes = [], []
            for _ in range(args.runs):
                c = timed([py, "-c", CHECK, str(path)])
                h = timed([py, "-c", HASH, str(path)])
                assert c[2] == "None", f"the check refused the dump: {c[2]}"
                checks.append(c)
                hashes.append(h)
            target = lib.fresh_db(cluster, "restored")
            restore_s, _, _ = timed_plain([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                     "--single-transaction", "-d", target, "-f", str(path)])
            check_s = statistics.median(c[0] for c in checks)
            hash_s = statistics.median(h[0] for h in hashes)
            peak = max(c[1] for c in checks)
            hash_peak = max(h[1] for h in hashes)
            print(f"\n== plain dump, {label}: {size:.0f} MB ==")
            print(f"  check (plain_hazard)  {check_s:7.2f} s  {size / check_s:6.0f} MB/s  "
                  f"{check_s / hash_s:5.2f}x sha256's time  peak {peak:.0f} MB")
            print(f"  sha256 of the file    {hash_s:7.2f} s  {size / hash_s:6.0f} MB/s  "
                  f"                     peak {hash_peak:.0f} MB")
            print(f"  psql restore (once)   {restore_s:7.2f} s  "
                  f"(the check adds {100 * check_s / restore_s:.0f}% to it)")
    finally:
        cluster.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
