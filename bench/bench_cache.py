"""Embedding cache benchmark: kgserve with the cache (KG_CACHE_MB=256) against without (0), on a
workload where 50% of the texts repeat and on one where none does; optionally infinity-emb with
and without its --vector-disk-cache on the same workloads.

    flock /work/bench.lock .venv/bin/python bench/bench_cache.py [--seconds 15]
        [--texts-per-request 1] [--infinity /work/benchtools/infinity/bin/infinity_emb]

Serves the bundled MiniLM with `gunicorn -c gunicorn.conf.py kgserve:app` on a throwaway
PostgreSQL, warms each server up with texts of its own, then drives it with wrk (32 connections)
through a list of requests long enough never to wrap around: at 50% repeats each text is, with
probability 1/2, one already sent in this run (uniformly chosen), else a new one. Prints
requests/s, p50/p99, errors and the hit ratio, then the ratios against the goals of issue 14:
>= 1.8x with the cache at 50% repeats, no loss (<= 3%) at 0%. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serve_lib as lib
from bench.bench_serve import start_database

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def workload(n: int, repeats: float, per_request: int, seed: int) -> list[str]:
    """`n` request bodies of `per_request` texts where a share `repeats` of texts repeat."""
    rng = random.Random(seed)
    fresh = iter(lib.texts(n * per_request + 10, seed=seed))
    sent: list[str] = []
    bodies = []
    for _ in range(n):
        batch = []
        for _ in range(per_request):
            text = rng.choice(sent) if sent and rng.random() < repeats else next(fresh)
            sent.append(text)
            batch.append(text)
        bodies.append(json.dumps({"input": batch if per_request > 1 else batch[0]}))
    return bodies


def drive(base: str, path: str, bodies: list[str], work: Path, seconds: float, name: str):
    folder = work / name
    folder.mkdir(exist_ok=True)
    return lib.run_wrk(base + path, lib.wrk_script(folder, bodies), 32, seconds)


def hits_and_misses(base: str) -> tuple[float, float]:
    import urllib.request

    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    values = {"kgserve_cache_hits_total": 0.0, "kgserve_cache_misses_total": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] += float(value)
    return values["kgserve_cache_hits_total"], values["kgserve_cache_misses_total"]


def bench_kgserve(cache_mb: int, db_url: str, loads: dict, warm: list[str], work: Path,
                  seconds: float) -> dict:
    from tests.support.tiny_models import minilm_dir

    port, token = lib.free_port(), secrets.token_hex(16)
    env = {"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token, "KG_CACHE_MB": str(cache_mb)}
    proc = lib.start_gunicorn(port, env, work / f"gunicorn-{cache_mb}.log")
    base, admin = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        lib.wait_until(lambda: lib.http("GET", base + "/healthz")[0] == 200, 120, "kgserve", proc)
        code, body = lib.http("POST", base + "/admin/embedding/config", {
            "provider": "local", "model_name": str(minilm_dir()), "embedding_dimensions": 384,
            "precision": "float32", "device": "cpu", "batch_size": 32,
            "allow_dimension_change": True, "updated_by": "bench"}, admin, timeout=600)
        if code != 200:
            raise RuntimeError(f"selecting the model failed: {code} {body}")
        drive(base, "/v1/embeddings", warm, work, max(3.0, seconds / 3), f"warm-{cache_mb}")
        out = {}
        for name, bodies in loads.items():
            before = hits_and_misses(base)
            load = drive(base, "/v1/embeddings", bodies, work, seconds, f"{name}-{cache_mb}")
            after = hits_and_misses(base)
            looked = (after[0] - before[0]) + (after[1] - before[1])
            out[name] = (load, (after[0] - before[0]) / looked if looked else 0.0)
        return out
    finally:
        lib.stop(proc)


def bench_infinity(binary: str, disk_cache: bool, loads: dict, warm: list[str], work: Path,
                   seconds: float) -> dict | str:
    import os
    import subprocess

    from tests.support.tiny_models import minilm_dir

    port = lib.free_port()
    flag = "--vector-disk-cache" if disk_cache else "--no-vector-disk-cache"
    cmd = [binary, "v2", "--model-id", str(minilm_dir()), "--served-model-name", MODEL,
           "--port", str(port), "--device", "cpu", "--engine", "torch", flag]
    log = work / f"infinity-{disk_cache}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        lib.wait_until(lambda: lib.http("GET", base + "/models")[0] == 200, 600, "infinity",
                       proc)
        drive(base, "/embeddings", warm, work, max(3.0, seconds / 3), f"iwarm-{disk_cache}")
        return {name: (drive(base, "/embeddings", bodies, work, seconds,
                             f"i{name}-{disk_cache}"), None) for name, bodies in loads.items()}
    except RuntimeError as exc:
        tail = log.read_text(errors="replace").strip().splitlines()[-2:] if log.exists() else []
        return f"not available ({exc}; {' / '.join(tail)[:200]})"
    finally:
        lib.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20000,
                        help="bodies per workload: more than a run sends, so none wraps around")
    parser.add_argument("--infinity", default=None, help="infinity_emb binary (optional peer)")
    args = parser.parse_args()
    per = args.texts_per_request
    loads = {"50% repeats": workload(args.requests, 0.5, per, 1),
             "0% repeats": workload(args.requests, 0.0, per, 2)}
    warm = workload(2000, 0.0, per, 3)
    work = Path(tempfile.mkdtemp(prefix="kgbench-cache-"))
    work.chmod(0o755)  # the postgres user must reach the cluster below it
    cluster, url = start_database(work)
    try:
        runs = {"kgserve, cache 256 MB": bench_kgserve(256, url, loads, warm, work, args.seconds),
                "kgserve, no cache": bench_kgserve(0, url, loads, warm, work, args.seconds)}
    finally:
        cluster.stop()
    if lib.infinity_available(args.infinity):
        runs["infinity, --vector-disk-cache"] = bench_infinity(args.infinity, True, loads, warm,
                                                               work, args.seconds)
        runs["infinity, no cache"] = bench_infinity(args.infinity, False, loads, warm, work,
                                                    args.seconds)
    print(f"\nMiniLM, {per} text(s) per request, 32 connections, {args.seconds:g} s per run "
          f"(2 gunicorn workers)")
    print(f"{'server':<32}{'workload':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'hit ratio':>11}")
    for label, result in runs.items():
        if isinstance(result, str):
            print(f"{label:<32}{result}")
            continue
        for name, (load, hit) in result.items():
            ratio = f"{hit:>11.2f}" if hit is not None else f"{'-':>11}"
            print(f"{label:<32}{name:<14}{load.rps:>9.1f}{load.p50_ms:>9.1f}{load.p99_ms:>9.1f}"
                  f"{load.errors:>8}{ratio}")
    on, off = runs["kgserve, cache 256 MB"], runs["kgserve, no cache"]
    gain = on["50% repeats"][0].rps / off["50% repeats"][0].rps
    same = on["0% repeats"][0].rps / off["0% repeats"][0].rps
    print(f"\ncache vs no cache at 50% repeats: {gain:.2f}x (goal >= 1.8x: "
          f"{'met' if gain >= 1.8 else 'NOT met'})")
    print(f"cache vs no cache at 0% repeats:  {same:.2f}x (goal >= 0.97x: "
          f"{'met' if same >= 0.97 else 'NOT met'})")
    peer = runs.get("infinity, --vector-disk-cache")
    if isinstance(peer, dict):
        print(f"kgserve cache vs infinity --vector-disk-cache at 50% repeats: "
              f"{on['50% repeats'][0].rps / peer['50% repeats'][0].rps:.2f}x")


if __name__ == "__main__":
    main()
