"""Served speed against the model's own: a baseline commit and this tree side by side, per backend.

    flock /work/bench.lock .venv/bin/python bench/bench_speed.py [--baseline-ref main]
        [--backends torch:float32,openvino:float32,openvino:int8] [--seconds 6]

Makes a git worktree of `--baseline-ref` in /tmp and serves MiniLM with
`gunicorn -c gunicorn.conf.py kgserve:app` from each tree in turn (the same venv, each tree's own
packages and gunicorn settings, access log on, defaults otherwise: 2 workers, the config's
default batch_size) on one throwaway database. Every request holds texts never sent before
(kgserve caches embeddings). wrk (one thread, its CPU share printed) measures per server:
- one client: p50 of single-text requests;
- 32 clients of single texts: requests/s;
- bulk: 4 connections of 32 texts each: texts/s;
- fairness: one single-text client's p50 while the bulk load runs, over its idle p50.
The raw model (kgserve's provider of the baseline tree, no server, one thread) gives the goals'
anchors: the p50 of one single-text call, and the capacity of all cores, two one-thread
processes side by side each calling it with 32 texts. Prints the issue's table and the ratios
against its goals: bulk >= 0.9x capacity, 32 clients >= 0.6x, one client <= raw + 0.7 ms,
fairness <= 3x; then the workers' CPU seconds per text (from /proc) against the raw model's,
the same ratios in a form that load from elsewhere on the machine hardly changes. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import serve_lib as lib
from bench import speed_lib as sl

BACKENDS = "torch:float32,openvino:float32,openvino:int8"


def serve(tree: Path, folder: Path, dims: int, db_url: str, backend: str, precision: str,
          work: Path, seconds: float) -> dict | str:
    """Serve the model from `tree` and measure it; the figures, or why it could not."""
    token = secrets.token_hex(16)
    proc, base = lib.start_kgserve({"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token},
                                   work / f"gunicorn-{tree.name}.log", root=tree)
    url = base + "/v1/embeddings"
    try:
        code, body = lib.select_model(base, token, {
            "model_name": str(folder), "embedding_dimensions": dims, "precision": precision,
            "backend": backend})
        if code != 200:
            return f"selecting the model failed: {code} {str(body)[:200]}"
        workers = lib.children(proc.pid)
        lib.wait_workers(proc, base, token, body["config_id"], len(workers))
        sl.wrk(url, 1, 32, 3, work)  # warm-up: every shape the runs below meet, JITs, pools
        sl.wrk(url, 32, 4, 3, work)
        one, _, _ = sl.wrk(url, 1, 1, seconds, work)
        many, cpu_many, ms_many = sl.wrk(url, 1, 32, seconds, work, workers)
        bulk, cpu_bulk, ms_bulk = sl.wrk(url, 32, 4, seconds, work, workers)
        background = sl.wrk_background(url, 32, 4, seconds + 2, work)
        time.sleep(1)
        busy, _, _ = sl.wrk(url, 1, 1, seconds, work)
        loaded = lib.parse_wrk(background.communicate()[0])
        return {"one": one, "many": many, "bulk": bulk, "busy": busy, "loaded": loaded,
                "cpu": max(cpu_many, cpu_bulk), "cpu_many": ms_many * 1000,
                "cpu_bulk": ms_bulk * 1000,
                "errors": sum(r.errors for r in (one, many, bulk, busy, loaded))}
    finally:
        lib.stop(proc)


def raw_figures(tree: Path, folder: Path, dims: int, backend: str, precision: str,
                seconds: float) -> dict:
    """The raw model: one-text call p50, 32-per-call texts/s alone and two processes' sum."""
    one = sl.raw(tree, folder, dims, backend, precision, "one", seconds, 1)[0]
    alone = sl.raw(tree, folder, dims, backend, precision, "batch", seconds, 1)[0]
    pair = sl.raw(tree, folder, dims, backend, precision, "batch", seconds, 2)
    return {"one_ms": one["p50_ms"], "one_rate": one["rate"], "batch": alone["rate"],
            "capacity": sum(r["rate"] for r in pair), "cpu_ms": alone["cpu_ms"]}


def report(label: str, raw: dict, rows: dict[str, dict | str]) -> None:
    print(f"\n== {label} ==  raw model, 1 thread: 1 text {raw['one_ms']:.2f} ms (p50) / "
          f"{raw['batch']:.0f} texts/s at 32 per call; all cores (2 processes x 1 thread, 32 per "
          f"call): {raw['capacity']:.0f} texts/s")
    print(f"{'':<18}{'1 client p50':>13}{'32 clients':>12}{'bulk':>12}{'busy p50':>10}"
          f"{'errors':>8}{'wrk CPU':>9}   ratios (goals: bulk >= 0.9x, 32 clients >= 0.6x of "
          f"all cores; 1 client <= raw +0.7 ms; busy <= 3x idle)")
    for name, r in rows.items():
        if isinstance(r, str):
            print(f"{name:<18} {r}")
            continue
        bulk = r["bulk"].rps * 32
        print(f"{name:<18}{r['one'].p50_ms:>10.2f} ms{r['many'].rps:>8.0f} r/s{bulk:>8.0f} t/s"
              f"{r['busy'].p50_ms:>7.1f} ms{r['errors']:>8}{r['cpu'] * 100:>8.0f}%   "
              f"bulk {bulk / raw['capacity']:.2f}x, 32 clients "
              f"{r['many'].rps / raw['capacity']:.2f}x, 1 client "
              f"{r['one'].p50_ms - raw['one_ms']:+.2f} ms, busy "
              f"{r['busy'].p50_ms / r['one'].p50_ms:.1f}x idle")
    print(f"CPU per text (load-proof: what bounds throughput when the cores are busy), raw model "
          f"at 32 per call {raw['cpu_ms']:.2f} ms:")
    for name, r in rows.items():
        if not isinstance(r, str):
            print(f"  {name:<16} 32 clients {r['cpu_many']:.2f} ms "
                  f"({raw['cpu_ms'] / r['cpu_many']:.2f}x the raw model's rate), bulk "
                  f"{r['cpu_bulk']:.2f} ms ({raw['cpu_ms'] / r['cpu_bulk']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="main",
                        help="the commit served beside this tree (default main)")
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--seconds", type=float, default=6.0, help="per wrk run")
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    from tests.support.tiny_models import minilm_dir

    folder, dims = minilm_dir(), 384
    print(f"load average before: {os.getloadavg()}", flush=True)
    with sl.BaselineTree(args.baseline_ref) as baseline, \
            tempfile.TemporaryDirectory(prefix="kgbench-", dir="/tmp") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the postgres user must reach the cluster below it
        trees = {f"main {sl.commit_of(baseline)}": baseline,
                 f"change {sl.commit_of(lib.REPO)}": lib.REPO}
        cluster, db_url = lib.start_database(work)
        try:
            for k, item in enumerate(args.backends.split(",")):
                backend, precision = item.split(":")
                started = time.monotonic()
                order = list(trees.items())
                if k % 2:  # take turns going first: load that comes and goes falls on both
                    order.reverse()
                rows = {name: serve(tree, folder, dims, db_url, backend, precision, work,
                                    args.seconds) for name, tree in order}
                raw = raw_figures(baseline, folder, dims, backend, precision, args.raw_seconds)
                report(f"{backend} {precision}", raw, {n: rows[n] for n in trees})
                print(f"({time.monotonic() - started:.0f}s; load average {os.getloadavg()})",
                      flush=True)
        finally:
            cluster.stop(mode="immediate")


if __name__ == "__main__":
    main()
