"""The `down` part of bench_migrate.py: reverse N applied migrations with kgmigrate, dbmate
(`rollback` reverses one per call, so it runs N times), yoyo (`rollback --all`) and psql per file.

Each run gets a fresh database on which the tool itself applied the N migrations (not timed);
only the reversal is timed, end to end as subprocesses. Every down file drops its table and
removes the old runner's tracking row, so every tool ends with an empty public.schema_migrations.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import migrate_lib as lib


def _drop(v: int) -> list[str]:
    return [f"DROP TABLE bench_{v:04d};",
            f"DELETE FROM public.schema_migrations WHERE version = {v};"]


def generate_down(root: Path, n: int) -> dict[str, Path]:
    """Write each tool's files with their reversals (its own folder each)."""
    dirs = {k: root / k for k in ("kgmigrate", "psql", "dbmate", "yoyo")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for v in range(1, n + 1):
        up, down = "\n".join(lib.body(v)), "\n".join(_drop(v))
        name = f"{v:04d}_bench_{v:04d}"
        for tool in ("kgmigrate", "psql"):
            (dirs[tool] / f"{name}.sql").write_text(f"-- Migration {v:04d}\n{up}\n")
            (dirs[tool] / f"{name}.down.sql").write_text(f"-- Reverses {v:04d}\n{down}\n")
        (dirs["dbmate"] / f"{name}.sql").write_text(f"-- migrate:up\n{up}\n\n"
                                                    f"-- migrate:down\n{down}\n")
        (dirs["yoyo"] / f"{name}.sql").write_text(f"{up}\n")
        (dirs["yoyo"] / f"{name}.rollback.sql").write_text(f"{down}\n")
    return dirs


def _kgmigrate(bench: lib.Bench, dirs: dict, n: int, *extra: str) -> float:
    name, url = bench.fresh_db()
    base = [lib.kgmigrate_exe(), "--database-url", url, "--migrations-dir",
            str(dirs["kgmigrate"]), "--no-baseline"]
    lib.timed([[*base, "up", "-y", "--lint=off"]])
    bench.checkpoint(name)
    t = lib.timed([[*base, "down", "--to", "0", "-y", *extra]])
    bench.check_applied(name, 0)
    return t


def _psql(bench: lib.Bench, dirs: dict, n: int) -> float:
    from kgmigrate.postgres.programs import find_binary

    name, url = bench.fresh_db(with_tracking=True)
    psql = [str(find_binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f"]
    lib.timed([[*psql, str(dirs["psql"] / f"{v:04d}_bench_{v:04d}.sql")]
               for v in range(1, n + 1)])
    bench.checkpoint(name)
    t = lib.timed([[*psql, str(dirs["psql"] / f"{v:04d}_bench_{v:04d}.down.sql")]
                   for v in range(n, 0, -1)])
    bench.check_applied(name, 0)
    return t


def _dbmate(bench: lib.Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    cmd = [exe, "--url", bench.dbmate_url(name), "--migrations-dir", str(dirs["dbmate"]),
           "--migrations-table", "dbmate_migrations", "--no-dump-schema"]
    lib.timed([[*cmd, "up"]])
    bench.checkpoint(name)
    t = lib.timed([[*cmd, "rollback"]] * n)
    bench.check_applied(name, 0)
    return t


def _yoyo(bench: lib.Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    cmd = ["--batch", "--no-config-file", "--database", bench.yoyo_url(name), str(dirs["yoyo"])]
    lib.timed([[exe, "apply", *cmd]])
    bench.checkpoint(name)
    t = lib.timed([[exe, "rollback", "--all", *cmd]])
    bench.check_applied(name, 0)
    return t


def down_runs(bench: lib.Bench, n: int, repeat: int, dbmate: str | None,
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
    return lib.round_robin(tools, repeat)


def print_down(runs: dict[str, list[float]], n: int) -> None:
    med = {label: statistics.median(ts) for label, ts in runs.items()}
    kg = med["kgmigrate down"]
    print(f"down: reverse {n} applied migrations (1 DROP TABLE + tracking row each), fresh "
          f"database per run, median of {len(runs['kgmigrate down'])}:")
    for label, t in med.items():
        ratio = "" if label == "kgmigrate down" else f"   {t / kg:6.2f}x kgmigrate's time"
        print(f"  {label:<22} {t:7.3f} s  {t / n * 1000:7.2f} ms/migration{ratio}"
              f"   (best {min(runs[label]):.3f} s)")
