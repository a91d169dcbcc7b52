"""Time `kgmigrate up -y` on N generated migrations against a psql-per-file runner, dbmate and yoyo.

Usage: .venv/bin/python bench/bench_migrate.py [-n 200] [--repeat 3] [--lint-repeat 11] [--down-only]

Starts its own PostgreSQL cluster in a /tmp folder with normal durability (fsync on), gives every
run a fresh database, and times each tool end to end as a subprocess (interpreter start included).
dbmate (npm) and yoyo (PyPI) are optional: found on PATH, or named with --dbmate/--yoyo.
Also: `up` with lint on (the default) against `--lint=off` (goal: lint adds at most 10%), and
`kgmigrate lint` of the N files against squawk run directly on them (goal: at most 1.2x); and
`down` of the N migrations against `dbmate rollback` N times, yoyo and psql (migrate_down.py).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

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


def generate(root: Path, n: int) -> dict[str, Path]:
    """Write the seed-format files (own BEGIN/COMMIT) and the dbmate/yoyo variants of them."""
    dirs = {k: root / k for k in ("seed", "dbmate", "yoyo")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for v in range(1, n + 1):
        stmts = "\n".join(body(v))
        name = f"{v:04d}_bench_{v:04d}.sql"
        (dirs["seed"] / name).write_text(f"-- Migration {v:04d}\nBEGIN;\n{stmts}\nCOMMIT;\n")
        # dbmate and yoyo wrap each file in a transaction themselves; same statements otherwise.
        (dirs["dbmate"] / name).write_text(f"-- migrate:up\n{stmts}\n\n-- migrate:down\n")
        (dirs["yoyo"] / name).write_text(f"{stmts}\n")
    return dirs


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
        import psycopg

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


def check_applied(bench: Bench, dbname: str, n: int) -> None:
    import psycopg

    with psycopg.connect(bench.cluster.url(dbname)) as conn:
        got = conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone()[0]
    if got != n:
        raise SystemExit(f"{dbname}: expected {n} tracking rows, found {got}")


def run_kgmigrate(bench: Bench, dirs: dict, n: int, *extra: str) -> float:
    name, url = bench.fresh_db()
    exe = Path(sys.executable).with_name("kgmigrate")
    t = timed([[str(exe), "--database-url", url, "--migrations-dir", str(dirs["seed"]),
                "--no-baseline", "up", "-y", *extra]])
    check_applied(bench, name, n)
    return t


def lint_runs(dirs: dict, repeat: int) -> dict[str, list[float]]:
    """Time `kgmigrate lint` on the seed files and squawk run directly on the same files."""
    from kgmigrate.files.squawk import find_squawk

    squawk = find_squawk()
    files = sorted(str(p) for p in dirs["seed"].glob("*.sql"))
    exe = str(Path(sys.executable).with_name("kgmigrate"))
    cmds = {  # squawk exits 1 when it finds something; every file here has findings
        "squawk --reporter json": ([squawk, "--reporter", "json", "--assume-in-transaction",
                                    *files], (0, 1)),
        "squawk (its own output)": ([squawk, "--assume-in-transaction", *files], (0, 1)),
        "kgmigrate lint": ([exe, "--migrations-dir", str(dirs["seed"]), "lint"], (0,)),
        "kgmigrate --help": ([exe, "--help"], (0,)),
    }
    runs: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeat):
        for label, (cmd, ok) in cmds.items():
            runs[label].append(timed([cmd], ok=ok))
    return runs


def print_lint(runs: dict[str, list[float]], n: int) -> None:
    med = {label: statistics.median(ts) for label, ts in runs.items()}
    base = med["squawk --reporter json"]
    print(f"lint of {n} files, median of {len(runs['kgmigrate lint'])}:")
    for label in ("squawk --reporter json", "squawk (its own output)", "kgmigrate lint"):
        ratio = "" if label == "squawk --reporter json" else f"   {med[label] / base:5.2f}x squawk json"
        goal = "  (goal <= 1.2x)" if label == "kgmigrate lint" else ""
        print(f"  {label:<24} {med[label]:7.3f} s{ratio}{goal}   (best {min(runs[label]):.3f} s)")
    net = med["kgmigrate lint"] - med["kgmigrate --help"]
    print(f"  kgmigrate start-up alone (--help) {med['kgmigrate --help']:.3f} s; lint without it "
          f"{net:.3f} s = {net / base:.2f}x squawk json")


def run_psql(bench: Bench, dirs: dict, n: int) -> float:
    name, url = bench.fresh_db(with_tracking=True)
    from kgmigrate.postgres.programs import find_binary

    psql = str(find_binary("psql"))
    files = sorted(dirs["seed"].glob("*.sql"))
    t = timed([[psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(f)]
               for f in files])
    check_applied(bench, name, n)
    return t


def run_dbmate(bench: Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    url = (f"postgres://postgres@/{name}?socket={quote(str(bench.cluster.sockdir), safe='/')}"
           f"&port={bench.cluster.port}&sslmode=disable")
    t = timed([[exe, "--url", url, "--migrations-dir", str(dirs["dbmate"]), "--migrations-table",
                "dbmate_migrations", "--no-dump-schema", "up"]])
    check_applied(bench, name, n)
    return t


def run_yoyo(bench: Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    url = (f"postgresql://postgres@/{name}?host={quote(str(bench.cluster.sockdir), safe='')}"
           f"&port={bench.cluster.port}")
    t = timed([[exe, "apply", "--batch", "--no-config-file", "--database", url,
                str(dirs["yoyo"])]])
    check_applied(bench, name, n)
    return t


def find_tool(explicit: str | None, name: str, extra: list[str]) -> str | None:
    if explicit:
        return explicit
    for cand in [shutil.which(name), *extra]:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def help_startup(repeat: int = 10) -> float:
    exe = str(Path(sys.executable).with_name("kgmigrate"))
    times = [timed([[exe, "--help"]]) for _ in range(repeat)]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="number of migrations (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is shown")
    ap.add_argument("--lint-repeat", type=int, default=11, help="runs of each lint command")
    ap.add_argument("--lint-only", action="store_true", help="time only lint against squawk")
    ap.add_argument("--down-only", action="store_true", help="time only `down` against peers")
    ap.add_argument("--dbmate", help="path to dbmate (default: PATH, /work/benchtools, "
                                     "/tmp/benchtools)")
    ap.add_argument("--yoyo", help="path to yoyo (default: PATH, /work/benchtools, /tmp/benchtools)")
    args = ap.parse_args()
    n = args.n
    # npm's `dbmate` is a node script spawning the Go binary: time the Go binary itself.
    native = sorted(glob.glob("/work/benchtools/dbmate/node_modules/@dbmate/*/bin/dbmate")
                    + glob.glob("/tmp/benchtools/node_modules/@dbmate/*/bin/dbmate"))
    dbmate = find_tool(args.dbmate, "dbmate", [*native, "/tmp/benchtools/node_modules/.bin/dbmate"])
    yoyo = find_tool(args.yoyo, "yoyo", ["/work/benchtools/yoyo/venv/bin/yoyo",
                                         "/tmp/benchtools/venv/bin/yoyo"])

    if args.lint_only:
        with tempfile.TemporaryDirectory(prefix="kgbench-lint-") as root:
            print_lint(lint_runs(generate(Path(root), n), args.lint_repeat), n)
        return
    bench = Bench()
    if args.down_only:
        try:
            print_down(down_runs(bench, n, args.repeat, dbmate, yoyo), n)
        finally:
            bench.close()
        return
    try:
        dirs = generate(bench.root / "migrations", n)
        print(f"{n} migrations, 3 statements each + own tracking row; fresh database per run; "
              f"fsync on; median of {args.repeat}")
        for label, exe in (("dbmate", dbmate), ("yoyo", yoyo)):
            print(f"  {label}: {exe or 'not installed'}")
        tools = {"kgmigrate": lambda: run_kgmigrate(bench, dirs, n),
                 "kgmigrate --lint=off": lambda: run_kgmigrate(bench, dirs, n, "--lint=off"),
                 "psql per file": lambda: run_psql(bench, dirs, n)}
        if dbmate:
            tools["dbmate"] = lambda: run_dbmate(bench, dirs, n, dbmate)
        if yoyo:
            tools["yoyo"] = lambda: run_yoyo(bench, dirs, n, yoyo)
        runs: dict[str, list[float]] = {label: [] for label in tools}
        for _ in range(args.repeat):  # round robin, so a noisy moment hits every tool alike
            for label, fn in tools.items():
                runs[label].append(fn())
        results = {label: statistics.median(ts) for label, ts in runs.items()}
        kg = results["kgmigrate"]
        for label in ("kgmigrate", "kgmigrate --lint=off", "psql per file", "dbmate", "yoyo"):
            if label not in results:
                print(f"  {label:<20} not installed")
                continue
            t = results[label]
            ratio = "" if label == "kgmigrate" else f"   {t / kg:6.2f}x kgmigrate's time"
            print(f"  {label:<20} {t:7.3f} s  {t / n * 1000:7.2f} ms/migration{ratio}"
                  f"   (best {min(runs[label]):.3f} s)")
        off = results["kgmigrate --lint=off"]
        print(f"  lint on adds {(kg / off - 1) * 100:+.1f}% to `up` of {n} pending migrations "
              f"(goal <= +10%)")
        print(f"  kgmigrate --help startup: {help_startup():.3f} s (goal < 0.3 s)")
        print_lint(lint_runs(dirs, args.lint_repeat), n)
        print_down(down_runs(bench, n, args.repeat, dbmate, yoyo), n)
    finally:
        bench.close()


if __name__ == "__main__":
    from migrate_down import down_runs, print_down  # it imports this module's helpers

    main()
