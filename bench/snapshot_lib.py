"""Helpers shared by bench_snapshot.py and bench_restore_check.py: a database of a given size
filled with the project's schema, fresh databases, and timed tool runs with their CPU."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from kgmigrate.postgres.localdb import LocalCluster

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
