"""Load benchmark: kgserve (gunicorn, own defaults) vs infinity-emb vs raw sentence-transformers.

    .venv/bin/python bench/bench_serve.py [--models minilm,nomic] [--seconds 20]
        [--more-requests 100000] [--infinity /tmp/infvenv/bin/infinity_emb]

Starts a throwaway PostgreSQL (kgmigrate's LocalCluster) in /tmp, applies the schema with
kgmigrate, serves with `gunicorn -c gunicorn.conf.py kgserve:app`, selects the model through the
admin API, and drives it with wrk (32 concurrent single-text clients, then one client). Then
infinity-emb on the same model folder, then raw `encode` one at a time and at batch 32.
Prints requests/s, p50/p99 latency, errors, the ratios against the goals of issue 5, and the
resident memory of the workers after 1 000 requests and after N more. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serve_lib as lib

MODELS_DIR = Path("/tmp/kgbench-models")


def model_folder(name: str) -> tuple[Path, int]:
    """The model's folder and size: the bundled MiniLM, or a random nomic-sized NomicBert."""
    from tests.support.tiny_models import build_nomic_sized_model, minilm_dir

    if name == "minilm":
        return minilm_dir(), 384
    target = MODELS_DIR / "nomic-sized"
    if not (target / "modules.json").is_file():
        print(f"building a random nomic-sized model in {target} ...", flush=True)
        shutil.rmtree(target, ignore_errors=True)
        build_nomic_sized_model(target)
    return target, 768


def start_database(root: Path):
    """A fast throwaway cluster with the project's schema applied by kgmigrate; (cluster, URL)."""
    from kgmigrate.localdb import LocalCluster

    cluster = LocalCluster(root / "pg", dbname="kg", fast=True, port=lib.free_port())
    cluster.start()
    url = cluster.url()
    subprocess.run([sys.executable, "-m", "kgmigrate", "--database-url", url,
                    "--migrations-dir", str(lib.REPO / "schema" / "migrations"),
                    "--backups-dir", str(root / "backups"), "up", "-y"],
                   check=True, capture_output=True, cwd=lib.REPO)
    return cluster, url


def bodies(sample: list[str], model: str) -> list[str]:
    return [json.dumps({"input": t, "model": model}) for t in sample]


def measure(base: str, path: str, payloads: list[str], work: Path, seconds: float,
            after_warmup=lambda: None) -> dict:
    """Warm up with 1 000 requests, then 32 clients and 1 client for `seconds` each."""
    url = base + path
    script = lib.wrk_script(work, payloads)
    warm = lib.drive_count(url, script, 1000)
    after_warmup()
    many = lib.run_wrk(url, script, 32, seconds)
    one = lib.run_wrk(url, script, 1, seconds)
    return {"many": many, "one": one, "script": script, "done": warm.requests}


def bench_kgserve(folder: Path, dims: int, db_url: str, payloads: list[str], work: Path,
                  seconds: float, more: int) -> dict:
    port, token = lib.free_port(), secrets.token_hex(16)
    log = work / "gunicorn.log"
    proc = lib.start_gunicorn(port, {"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        lib.wait_until(lambda: lib.http("GET", base + "/healthz")[0] == 200, 120, "kgserve", proc)
        code, body = lib.http("POST", base + "/admin/embedding/config", {
            "provider": "local", "model_name": str(folder), "embedding_dimensions": dims,
            "precision": "float32", "device": "cpu", "batch_size": 32,
            "allow_dimension_change": True, "updated_by": "bench"},
            {"Authorization": f"Bearer {token}"}, timeout=600)
        if code != 200:
            raise RuntimeError(f"selecting the model failed: {code} {body}")
        workers = lib.children(proc.pid)
        # Every worker follows the change (NOTIFY); wait until many requests in a row succeed.
        lib.wait_until(lambda: all(lib.http("POST", base + "/v1/embeddings",
                                            json.loads(payloads[0]))[0] == 200
                                   for _ in range(8 * len(workers))), 600, "workers", proc)
        rss: list[float] = []
        result = measure(base, "/v1/embeddings", payloads, work, seconds,
                         lambda: rss.append(sum(lib.rss_mib(p) for p in workers)))
        result["rss_1000"] = rss[0]
        result["rss_series"], result["more_done"], result["more_errors"] = [], 0, 0
        for _ in range(5):  # in steps, to see whether memory levels off or keeps growing
            step = lib.drive_count(base + "/v1/embeddings", result["script"], more // 5)
            result["more_done"] += step.requests
            result["more_errors"] += step.errors
            result["rss_series"].append(sum(lib.rss_mib(p) for p in workers))
        result["rss_more"] = result["rss_series"][-1]
        result["workers"] = len(workers)
        return result
    finally:
        lib.stop(proc)


def bench_infinity(binary: str, folder: Path, payloads_for, work: Path,
                   seconds: float) -> dict | str:
    port = lib.free_port()
    log = work / "infinity.log"
    proc = lib.start_infinity(binary, folder, "bench-model", port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        lib.wait_until(lambda: lib.http("GET", base + "/models")[0] == 200, 600, "infinity",
                       proc)
        payloads = payloads_for("bench-model")
        code, _ = lib.http("POST", base + "/embeddings", json.loads(payloads[0]))
        if code != 200:
            return f"not available (answered {code})"
        result = measure(base, "/embeddings", payloads, work, seconds)
        result["rss"] = lib.rss_mib(proc.pid)
        return result
    except RuntimeError as exc:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return f"not available ({exc}; {' / '.join(tail)[:300]})"
    finally:
        lib.stop(proc)


def report(name: str, ours: dict, inf: dict | str, raw: dict) -> None:
    row = "{:<28}{:>10}{:>10}{:>10}{:>8}"
    print(f"\n== {name} ==")
    print(row.format("", "req/s", "p50 ms", "p99 ms", "errors"))
    runs = [("kgserve   32 clients", ours["many"]), ("kgserve    1 client", ours["one"])]
    if isinstance(inf, dict):
        runs += [("infinity  32 clients", inf["many"]), ("infinity   1 client", inf["one"])]
    for label, r in runs:
        print(row.format(label, f"{r.rps:.1f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", r.errors))
    if not isinstance(inf, dict):
        print(f"infinity-emb: {inf}")
    print(f"raw encode: one at a time {raw['one']:.1f} texts/s; batch 32 {raw['batch32']:.1f} "
          f"texts/s (batched/single {raw['batch32'] / raw['one']:.2f}x)")
    many, one = ours["many"], ours["one"]
    print(f"kgserve 32 clients / raw batch 32:   {many.rps / raw['batch32']:.2f}x  (goal >= 0.60)")
    print(f"kgserve 1 client / raw one at a time: {one.rps / raw['one']:.2f}x")
    if isinstance(inf, dict):
        print(f"kgserve / infinity, 32 clients:      {many.rps / inf['many'].rps:.2f}x  "
              f"(goal >= 1.10)")
        print(f"1 client p50: kgserve {one.p50_ms:.1f} ms vs infinity {inf['one'].p50_ms:.1f} ms"
              f"  (goal: kgserve <= infinity)")
    grow = (ours["rss_more"] / ours["rss_1000"] - 1) * 100
    print(f"kgserve RSS ({ours['workers']} workers): {ours['rss_1000']:.0f} MiB after the first "
          f"{ours['done']} requests, {ours['rss_more']:.0f} MiB after {ours['more_done']} more "
          f"(and the timed runs) "
          f"({ours['more_errors']} errors; {grow:+.1f}%, goal within 10%); in fifths: "
          + " ".join(f"{m:.0f}" for m in ours["rss_series"]))
    if isinstance(inf, dict):
        print(f"infinity-emb RSS: {inf['rss']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,nomic")
    parser.add_argument("--seconds", type=float, default=20.0, help="per wrk run")
    parser.add_argument("--more-requests", type=int, default=20000,
                        help="requests after the first 1 000 before RSS is read again")
    parser.add_argument("--raw-seconds", type=float, default=15.0)
    parser.add_argument("--infinity", default="/tmp/infvenv/bin/infinity_emb")
    parser.add_argument("--no-infinity", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    print(f"load average before: {os.getloadavg()}; gunicorn args from env: "
          f"{os.environ.get('GUNICORN_CMD_ARGS', '(none)')}", flush=True)
    sample = lib.texts()
    with tempfile.TemporaryDirectory(prefix="kgbench-", dir="/tmp") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the postgres user must reach the cluster below it
        cluster, db_url = start_database(work)
        try:
            for name in args.models.split(","):
                folder, dims = model_folder(name)
                started = time.monotonic()
                ours = bench_kgserve(folder, dims, db_url, bodies(sample, str(folder)), work,
                                     args.seconds, args.more_requests)
                if args.no_infinity or not lib.infinity_available(args.infinity):
                    inf: dict | str = "not available"
                else:
                    inf = bench_infinity(args.infinity, folder, lambda m: bodies(sample, m),
                                         work, args.seconds)
                raw = lib.raw_encode(folder, sample, args.raw_seconds)
                report(f"{name} ({folder.name}, {dims}-d)", ours, inf, raw)
                print(f"({time.monotonic() - started:.0f}s)", flush=True)
        finally:
            cluster.stop(mode="immediate")


if __name__ == "__main__":
    main()
