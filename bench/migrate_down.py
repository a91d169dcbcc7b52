"""The `down` part of bench_migrate.py: reverse N applied migrations with kgmigrate, dbmate
(`rollback` reverses one per call, so it runs N times), yoyo (`rollback --all`) and psql per file.

Each run gets a fresh database on which the tool itself applied the N migrations (not timed);
only the reversal is timed, end to end as subprocesses. Every down file drops its table and
removes the old runner's tracking row, so every tool ends with an empty public.schema_migrations.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from urllib.parse import quote

from bench_migrate import Bench, body, check_applied, timed


def _drop(v: int) -> list[str]:
    return [f"DROP TABLE bench_{v:04d};",
            f"DELETE FROM public.schema_migrations WHERE version = {v};"]


def _checkpoint(bench: Bench, name: str) -> None:
    """Flush what the untimed `up` wrote, so no tool's timed reversal pays for it."""
    import psycopg

    with psycopg.connect(bench.cluster.url(name), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def generate_down(root: Path, n: int) -> dict[str, Path]:
    """Write each tool's files with their reversals (its own folder each)."""
    dirs = {k: root / k for k in ("kgmigrate", "psql", "dbmate", "yoyo")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for v in range(1, n + 1):
        up, down = "\n".join(body(v)), "\n".join(_drop(v))
        name = f"{v:04d}_bench_{v:04d}"
        for tool in ("kgmigrate", "psql"):
            (dirs[tool] / f"{name}.sql").write_text(f"-- Migration {v:04d}\n{up}\n")
            (dirs[tool] / f"{name}.down.sql").write_text(f"-- Reverses {v:04d}\n{down}\n")
        (dirs["dbmate"] / f"{name}.sql").write_text(f"-- migrate:up\n{up}\n\n"
                                                    f"-- migrate:down\n{down}\n")
        (dirs["yoyo"] / f"{name}.sql").write_text(f"{up}\n")
        (dirs["yoyo"] / f"{name}.rollback.sql").write_text(f"{down}\n")
    return dirs


def _kgmigrate(bench: Bench, dirs: dict, n: int, *extra: str) -> float:
    name, url = bench.fresh_db()
    base = [str(Path(sys.executable).with_name("kgmigrate")), "--database-url", url,
            "--migrations-dir", str(dirs["kgmigrate"]), "--no-baseline"]
    timed([[*base, "up", "-y", "--lint=off"]])
    _checkpoint(bench, name)
    t = timed([[*base, "down", "--to", "0", "-y", *extra]])
    check_applied(bench, name, 0)
    return t


def _psql(bench: Bench, dirs: dict, n: int) -> float:
    from kgmigrate.postgres.programs import find_binary

    name, url = bench.fresh_db(with_tracking=True)
    psql = [str(find_binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f"]
    timed([[*psql, str(dirs["psql"] / f"{v:04d}_bench_{v:04d}.sql")] for v in range(1, n + 1)])
    _checkpoint(bench, name)
    t = timed([[*psql, str(dirs["psql"] / f"{v:04d}_bench_{v:04d}.down.sql")]
               for v in range(n, 0, -1)])
    check_applied(bench, name, 0)
    return t


def _dbmate(bench: Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    url = (f"postgres://postgres@/{name}?socket={quote(str(bench.cluster.sockdir), safe='/')}"
           f"&port={bench.cluster.port}&sslmode=disable")
    cmd = [exe, "--url", url, "--migrations-dir", str(dirs["dbmate"]), "--migrations-table",
           "dbmate_migrations", "--no-dump-schema"]
    timed([[*cmd, "up"]])
    _checkpoint(bench, name)
    t = timed([[*cmd, "rollback"]] * n)
    check_applied(bench, name, 0)
    return t


def _yoyo(bench: Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    url = (f"postgresql://postgres@/{name}?host={quote(str(bench.cluster.sockdir), safe='')}"
           f"&port={bench.cluster.port}")
    cmd = ["--batch", "--no-config-file", "--database", url, str(dirs["yoyo"])]
    timed([[exe, "apply", *cmd]])
    _checkpoint(bench, name)
    t = timed([[exe, "rollback", "--all", *cmd]])
    check_applied(bench, name, 0)
    return t


def down_runs(bench: Bench, n: int, repeat: int, dbmate: str | None,
              yoyo: str | None) -> dict[str, list[float]]:
    """Time the reversal of n migrations by each tool, round robin, `repeat` times."""
    dirs = generate_down(bench.root / "down", n)
    tools = {"kgmigrate down": lambda: _kgmigrate(bench, dirs, n),
             "kgmigrate --lint=off": lambda: _kgmigrate(bench, dirs, n, "--lint=off"),
             "psql per file": lambda: _psql(bench, dirs, n)}
    if dbmate:
        tools[f"dbmate rollback x{n}"] = lambda: _dbmate(bench, dirs, n, dbmate)
    if yoyo:
        tools["yoyo rollback --all"] = lambda: _yoyo(bench, dirs, n, yoyo)
    runs: dict[str, list[float]] = {label: [] for label in tools}
    for _ in range(repeat):
        for label, fn in tools.items():
            runs[label].append(fn())
    return runs


def print_down(runs: dict[str, list[float]], n: int) -> None:
    med = {label: statistics.median(ts) for label, ts in runs.items()}
    kg = med["kgmigrate down"]
    print(f"down: reverse {n} applied migrations (1 DROP TABLE + tracking row each), fresh "
          f"database per run, median of {len(runs['kgmigrate down'])}:")
    for label, t in med.items():
        ratio = "" if label == "kgmigrate down" else f"   {t / kg:6.2f}x kgmigrate's time"
        print(f"  {label:<22} {t:7.3f} s  {t / n * 1000:7.2f} ms/migration{ratio}"
              f"   (best {min(runs[label]):.3f} s)")
