"""Helpers shared by bench_migrate.py and migrate_down.py: generated migrations, a timed cluster
with a fresh database per run, the peers' connection URLs and finding their binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

from kgmigrate.postgres.localdb import LocalCluster

TRACKING = ("CREATE TABLE IF NOT EXISTS public.schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT NOW())")


def body(v: int) -> list[str]:
    """Return the three statements of migration `v` and its own tracking row."""
    t = f"bench_{v:04d}"
    return [
        (f"CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT NOT NULL, "
         f"created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());"),
        f"CREATE INDEX {t}_name ON {t} (name);",
        f"INSERT INTO {t} (name) VALUES ('a'), ('b'), ('c');",
        (f"INSERT INTO public.schema_migrations (version, name) VALUES ({v}, '{t}')\n"
         f"ON CONFLICT (version) DO NOTHING;"),
    ]


def kgmigrate_exe() -> str:
    """The kgmigrate console script beside this interpreter."""
    return str(Path(sys.executable).with_name("kgmigrate"))


class Bench:
    """A cluster with normal durability and a fresh database per run."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kgbench-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.cluster = LocalCluster(self.root / "pg", dbname="postgres", port=5432, fast=False)
        self.cluster.start()
        self.count = 0

    def fresh_db(self, with_tracking: bool = False) -> tuple[str, str]:
        """Create a new database; return (name, url)."""
        self.count += 1
        name = f"bench{self.count}"
        with psycopg.connect(self.cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        with psycopg.connect(self.cluster.url(name), autocommit=True) as conn:
            if with_tracking:
                conn.execute(TRACKING)
            # CREATE DATABASE leaves WAL and dirty pages behind; flush them outside the timing.
            conn.execute("CHECKPOINT")
        return name, self.cluster.url(name)

    def checkpoint(self, name: str) -> None:
        """Flush what an untimed step wrote, so no tool's timed step pays for it."""
        with psycopg.connect(self.cluster.url(name), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def check_applied(self, name: str, n: int) -> None:
        """Fail unless database `name` has exactly `n` tracking rows."""
        with psycopg.connect(self.cluster.url(name)) as conn:
            got = conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone()[0]
        if got != n:
            raise SystemExit(f"{name}: expected {n} tracking rows, found {got}")

    def dbmate_url(self, name: str) -> str:
        """Database `name` as dbmate spells a unix-socket URL."""
        return (f"postgres://postgres@/{name}?socket={quote(str(self.cluster.sockdir), safe='/')}"
                f"&port={self.cluster.port}&sslmode=disable")

    def yoyo_url(self, name: str) -> str:
        """Database `name` as yoyo (psycopg) spells a unix-socket URL."""
        return (f"postgresql://postgres@/{name}?host={quote(str(self.cluster.sockdir), safe='')}"
                f"&port={self.cluster.port}")

    def close(self) -> None:
        self.cluster.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def timed(cmds: list[list[str]], env: dict | None = None, ok: tuple[int, ...] = (0,)) -> float:
    """Run the commands one after another (each checked); return the elapsed seconds."""
    t0 = time.perf_counter()
    for cmd in cmds:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode not in ok:
            raise SystemExit(f"failed: {' '.join(cmd[:3])} ...\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def round_robin(tools: dict, repeat: int) -> dict[str, list[float]]:
    """Call each tool's timing function `repeat` times, taking turns, so a noisy moment on the
    machine hits every tool alike; the seconds per tool."""
    runs: dict[str, list[float]] = {label: [] for label in tools}
    for _ in range(repeat):
        for label, fn in tools.items():
            runs[label].append(fn())
    return runs


def find_tool(explicit: str | None, name: str, extra: list[str]) -> str | None:
    """The peer's binary: as given, else on PATH, else the first of `extra` that exists."""
    if explicit:
        return explicit
    for cand in [shutil.which(name), *extra]:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None
