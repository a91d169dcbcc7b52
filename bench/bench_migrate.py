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
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import migrate_down as down
from bench import migrate_lib as lib


def generate(root: Path, n: int) -> dict[str, Path]:
    """Write the seed-format files (own BEGIN/COMMIT) and the dbmate/yoyo variants of them."""
    dirs = {k: root / k for k in ("seed", "dbmate", "yoyo")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for v in range(1, n + 1):
        stmts = "\n".join(lib.body(v))
        name = f"{v:04d}_bench_{v:04d}.sql"
        (dirs["seed"] / name).write_text(f"-- Migration {v:04d}\nBEGIN;\n{stmts}\nCOMMIT;\n")
        # dbmate and yoyo wrap each file in a transaction themselves; same statements otherwise.
        (dirs["dbmate"] / name).write_text(f"-- migrate:up\n{stmts}\n\n-- migrate:down\n")
        (dirs["yoyo"] / name).write_text(f"{stmts}\n")
    return dirs


def run_kgmigrate(bench: lib.Bench, dirs: dict, n: int, *extra: str) -> float:
    name, url = bench.fresh_db()
    t = lib.timed([[lib.kgmigrate_exe(), "--database-url", url, "--migrations-dir",
                    str(dirs["seed"]), "--no-baseline", "up", "-y", *extra]])
    bench.check_applied(name, n)
    return t


def lint_runs(dirs: dict, repeat: int) -> dict[str, list[float]]:
    """Time `kgmigrate lint` on the seed files and squawk run directly on the same files."""
    from kgmigrate.files.squawk import find_squawk

    squawk = find_squawk()
    files = sorted(str(p) for p in dirs["seed"].glob("*.sql"))
    exe = lib.kgmigrate_exe()
    cmds = {  # squawk exits 1 when it finds something; every file here has findings
        "squawk --reporter json": ([squawk, "--reporter", "json", "--assume-in-transaction",
                                    *files], (0, 1)),
        "squawk (its own output)": ([squawk, "--assume-in-transaction", *files], (0, 1)),
        "kgmigrate lint": ([exe, "--migrations-dir", str(dirs["seed"]), "lint"], (0,)),
        "kgmigrate --help": ([exe, "--help"], (0,)),
    }
    return lib.round_robin({label: lambda cmd=cmd, ok=ok: lib.timed([cmd], ok=ok)
                            for label, (cmd, ok) in cmds.items()}, repeat)


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


def run_psql(bench: lib.Bench, dirs: dict, n: int) -> float:
    name, url = bench.fresh_db(with_tracking=True)
    from kgmigrate.postgres.programs import find_binary

    psql = str(find_binary("psql"))
    files = sorted(dirs["seed"].glob("*.sql"))
    t = lib.timed([[psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(f)]
                   for f in files])
    bench.check_applied(name, n)
    return t


def run_dbmate(bench: lib.Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    t = lib.timed([[exe, "--url", bench.dbmate_url(name), "--migrations-dir", str(dirs["dbmate"]),
                    "--migrations-table", "dbmate_migrations", "--no-dump-schema", "up"]])
    bench.check_applied(name, n)
    return t


def run_yoyo(bench: lib.Bench, dirs: dict, n: int, exe: str) -> float:
    name, _ = bench.fresh_db(with_tracking=True)
    t = lib.timed([[exe, "apply", "--batch", "--no-config-file", "--database",
                    bench.yoyo_url(name), str(dirs["yoyo"])]])
    bench.check_applied(name, n)
    return t


def help_startup(repeat: int = 10) -> float:
    times = [lib.timed([[lib.kgmigrate_exe(), "--help"]]) for _ in range(repeat)]
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
    dbmate = lib.find_tool(args.dbmate, "dbmate", [*native, "/tmp/benchtools/node_modules/.bin/dbmate"])
    yoyo = lib.find_tool(args.yoyo, "yoyo", ["/work/benchtools/yoyo/venv/bin/yoyo",
                                             "/tmp/benchtools/venv/bin/yoyo"])

    if args.lint_only:
        with tempfile.TemporaryDirectory(prefix="kgbench-lint-") as root:
            print_lint(lint_runs(generate(Path(root), n), args.lint_repeat), n)
        return
    bench = lib.Bench()
    if args.down_only:
        try:
            down.print_down(down.down_runs(bench, n, args.repeat, dbmate, yoyo), n)
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
        runs = lib.round_robin(tools, args.repeat)
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
        down.print_down(down.down_runs(bench, n, args.repeat, dbmate, yoyo), n)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
