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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from kgmigrate.postgres.localdb import LocalCluster
from kgmigrate.postgres.programs import find_binary
from kgmigrate.snapshot.take import DEFAULT_COMPRESSION

REPO = Path(__file__).resolve().parent.parent

FILL = """
INSERT INTO kg_logs.audit_trail (occurred_at, actor, action, target, details)
SELECT timestamptz '2025-01-01' + i * interval '1 second', 'user' || (i % 500),
       (ARRAY['login', 'query', 'ingest', 'delete', 'update'])[1 + i % 5],
       'ontology/' || md5((i % 9000)::text),
       jsonb_build_object('request_id', md5(i::text), 'ms', i % 997, 'ok', i % 13 <> 0,
                          'terms', ARRAY['graph', 'node ' || (i % 71), 'edge ' || (i % 37)],
                          'note', 'the quick brown fox jumps over the lazy dog ' || (i % 101))
FROM generate_series(1, {audit}) AS i;
INSERT INTO kg_api.query_cache (query_hash, query_text, result, hit_count, expires_at)
SELECT md5(i::text), 'MATCH (n:Concept {{id: ' || i || '}})-[r]->(m) RETURN m LIMIT 50',
       jsonb_build_object('rows', (SELECT jsonb_agg(jsonb_build_object(
           'id', i * 10 + k, 'label', 'Concept ' || ((i * 10 + k) % 5000),
           'score', round(((i * k) % 1000) / 1000.0, 3))) FROM generate_series(1, 6) AS k)),
       i % 50, timestamptz '2026-01-01' + i * interval '1 minute'
FROM generate_series(1, {cache}) AS i;
CREATE TABLE kg_api.bench_embeddings (id bigint PRIMARY KEY, model text NOT NULL,
                                      vec real[] NOT NULL);
INSERT INTO kg_api.bench_embeddings
SELECT i, 'all-MiniLM-L6-v2',
       ARRAY(SELECT round((random() * 2 - 1)::numeric, 6)::real
             FROM generate_series(1, 96) WHERE i > 0)
FROM generate_series(1, {emb}) AS i;
ANALYZE;
"""


CPU: list[float] = []  # client-side CPU seconds (user+sys) of each run's process tree


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(argv: list[str], env: dict | None = None) -> float:
    """Run a command, fail loudly on error, return its wall time (its CPU goes to CPU)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          check=False)
    elapsed = time.perf_counter() - t0
    CPU.append(_children_cpu() - c0)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {argv[:4]}...: {proc.stderr.decode()[-2000:]}")
    return elapsed


def build(cluster: LocalCluster, size_mb: int) -> str:
    """Create database `bench` holding about `size_mb` MB; return its URL."""
    url = cluster.url("bench")
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench")
        conn.execute("CREATE DATABASE bench TEMPLATE template0")
    kg = [sys.executable, "-m", "kgmigrate", "--database-url", url, "--migrations-dir",
          str(REPO / "schema" / "migrations")]
    run([*kg, "up", "-y", "--no-snapshot"])
    scale = size_mb / 120  # ~120 MB per unit on PostgreSQL 15
    fill = FILL.format(audit=int(160_000 * scale), cache=int(40_000 * scale),
                       emb=int(60_000 * scale))
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in fill.split(";\n"):
            if stmt.strip():
                conn.execute(stmt)
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(f"built database: {size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
    return url


def fresh_db(cluster: LocalCluster, name: str) -> str:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(name)))
    return cluster.url(name)


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
            cpus[key].append(CPU[-1])
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
        url = build(cluster, args.size_mb)
        pg_dump, pg_restore, psql = (str(find_binary(n, 15)) for n in
                                     ("pg_dump", "pg_restore", "psql"))
        kg = [sys.executable, "-m", "kgmigrate", "--backups-dir", str(work)]
        z = DEFAULT_COMPRESSION
        print(f"tools: {pg_dump}; kgmigrate default compression -Z{z}")

        print("\n== custom format, gzip levels (pg_dump -Fc -Z<level>, pg_restore -1) ==")
        for level in [int(x) for x in args.levels.split(",")]:
            out = work / f"z{level}.dump"
            t_dump = run([pg_dump, "-Fc", f"-Z{level}", "-f", str(out), f"--dbname={url}"])
            target = fresh_db(cluster, "restore_raw")
            t_rest = run([pg_restore, "-1", f"--dbname={target}", str(out)])
            print(f"-Z{level}: {out.stat().st_size / 1e6:7.1f} MB   dump {t_dump:6.2f} s   "
                  f"restore {t_rest:6.2f} s")
            out.unlink()

        def kg_snap(fmt: str, name: str):
            def go():
                (work / name).unlink(missing_ok=True)
                (work / f"{name}.json").unlink(missing_ok=True)
                return run([*kg, "--database-url", url, "snapshot", "-q", "--format", fmt,
                            "-o", str(work / name)])
            return go

        def raw_dump(args_: list[str], name: str):
            return lambda: run([pg_dump, *args_, "-f", str(work / name), f"--dbname={url}"])

        print(f"\n== snapshot (median of {args.runs}) ==")
        compare(f"custom -Z{z}: pg_dump -Fc vs snapshot", raw_dump(["-Fc", f"-Z{z}"], "raw.dump"),
                kg_snap("custom", "kg.dump"), args.runs)
        compare("plain: pg_dump -Fp vs snapshot --format plain", raw_dump(["-Fp"], "raw.sql"),
                kg_snap("plain", "kg.sql"), args.runs)
        print(f"sizes: custom raw {(work / 'raw.dump').stat().st_size / 1e6:.1f} MB, kgmigrate "
              f"{(work / 'kg.dump').stat().st_size / 1e6:.1f} MB; plain "
              f"{(work / 'kg.sql').stat().st_size / 1e6:.1f} MB")

        def raw_restore(argv_fn):
            return lambda: run(argv_fn(fresh_db(cluster, "restore_raw")))

        def kg_restore(name: str, populated: bool):
            def go():
                target = url if populated else fresh_db(cluster, "restore_kg")
                return run([*kg, "--database-url", target, "restore", "-y", str(work / name)])
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
                lambda: run([pg_restore, "-1", "--clean", "--if-exists", f"--dbname={url}",
                             str(work / "raw.dump")]),
                kg_restore("kg.dump", True), args.runs)
    finally:
        try:
            cluster.stop(mode="immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
