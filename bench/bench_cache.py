"""Embedding cache benchmark: kgserve with the cache (KG_CACHE_MB=256) against without (0), on a
workload where 50% of the texts repeat and on one where none does; optionally infinity-emb with
and without its --vector-disk-cache on the same workloads.

    flock /work/bench.lock .venv/bin/python bench/bench_cache.py [--seconds 24] [--rounds 4]
        [--texts-per-request 1] [--infinity /work/benchtools/infinity/bin/infinity_emb]

Serves the bundled MiniLM with `gunicorn -c gunicorn.conf.py kgserve:app` on a throwaway
PostgreSQL (infinity-emb v2 --engine torch on the same folder), warms each server up with texts of
its own, then drives them with wrk (32 connections) in alternating rounds (so that load from
elsewhere on the machine falls on all alike) through lists of requests that never wrap around: at
50% repeats each text is, with probability 1/2, one sent earlier in the same round's list
(uniformly chosen), else a new one. Prints requests/s, p50/p99, errors and the cache's hit ratio,
then the ratios against the goals of issue 14: >= 1.8x with the cache at 50% repeats, no loss
(<= 3%) at 0%. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import serve_lib as lib

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
    """The cache counters summed over the workers (0, 0 for a server without them)."""
    import urllib.request

    try:
        text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    except OSError:
        return 0.0, 0.0
    values = {"kgserve_cache_hits_total": 0.0, "kgserve_cache_misses_total": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] += float(value)
    return values["kgserve_cache_hits_total"], values["kgserve_cache_misses_total"]


@dataclass
class Server:
    label: str
    base: str
    path: str
    proc: subprocess.Popen


def start_kgserve(label: str, cache_mb: int, db_url: str, work: Path) -> Server:
    from tests.support.tiny_models import minilm_dir

    token = secrets.token_hex(16)
    env = {"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token, "KG_CACHE_MB": str(cache_mb)}
    proc, base = lib.start_kgserve(env, work / f"gunicorn-{cache_mb}.log", label)
    server = Server(label, base, "/v1/embeddings", proc)
    code, body = lib.select_model(base, token, {
        "model_name": str(minilm_dir()), "embedding_dimensions": 384, "precision": "float32",
        "batch_size": 32}, timeout=600)
    if code != 200:
        lib.stop(proc)
        raise RuntimeError(f"selecting the model failed: {code} {body}")
    return server


def start_infinity(label: str, binary: str, disk_cache: bool, work: Path) -> Server:
    from tests.support.tiny_models import minilm_dir

    port = lib.free_port()
    flag = "--vector-disk-cache" if disk_cache else "--no-vector-disk-cache"
    folder = work / f"infinity-{disk_cache}"  # its disk cache goes below the working folder
    folder.mkdir()
    proc = lib.start_infinity(binary, minilm_dir(), MODEL, port, folder / "log", "--engine",
                              "torch", flag, cwd=folder)
    server = Server(label, f"http://127.0.0.1:{port}", "/embeddings", proc)
    try:
        lib.wait_until(lambda: lib.http("GET", server.base + "/models")[0] == 200, 600, label,
                       proc)
    except RuntimeError:
        lib.stop(proc)
        raise
    return server


def alternate(servers: list[Server], bodies: list[str], rounds: int, seconds: float,
              work: Path, name: str) -> dict[str, tuple[lib.Load, float | None]]:
    """Drive each server through the workload in `rounds` slices, taking turns, so that load
    from elsewhere on the machine falls on all of them alike; totals per server."""
    chunk = len(bodies) // rounds
    parts: dict[str, list[lib.Load]] = {s.label: [] for s in servers}
    before = {s.label: hits_and_misses(s.base) for s in servers}
    for r in range(rounds):
        for s in servers:
            slug = f"{name}-{r}-{s.label}".replace(" ", "_").replace(",", "").replace("%", "")
            parts[s.label].append(drive(s.base, s.path, bodies[r * chunk:(r + 1) * chunk],
                                        work, seconds / rounds, slug))
    out = {}
    for s in servers:
        loads = parts[s.label]
        requests = sum(x.requests for x in loads)
        elapsed = sum(x.requests / x.rps for x in loads if x.rps)
        total = lib.Load(requests / elapsed if elapsed else 0.0,
                         statistics.median(x.p50_ms for x in loads), max(x.p99_ms for x in loads),
                         sum(x.errors for x in loads), requests)
        hits, misses = (a - b for a, b in zip(hits_and_misses(s.base), before[s.label]))
        out[s.label] = (total, hits / (hits + misses) if hits + misses else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="per server and workload")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20000,
                        help="bodies per workload: more than a run sends, so none wraps around")
    parser.add_argument("--infinity", default=None, help="infinity_emb binary (optional peer)")
    args = parser.parse_args()
    per = args.texts_per_request
    # One list per round, each with its own repeats: a repeat is of a text sent earlier in the
    # same round's list (wrk sends a list in order, but not all of it within a round).
    size = args.requests // args.rounds
    loads = {name: [b for r in range(args.rounds) for b in workload(size, share, per, seed + r)]
             for name, share, seed in (("50% repeats", 0.5, 100), ("0% repeats", 0.0, 200))}
    warm = workload(2000, 0.0, per, 3)
    work = Path(tempfile.mkdtemp(prefix="kgbench-cache-"))
    work.chmod(0o755)  # the postgres user must reach the cluster below it
    cluster, url = lib.start_database(work)
    servers: list[Server] = []
    missing: dict[str, str] = {}
    try:
        servers.append(start_kgserve("kgserve, cache 256 MB", 256, url, work))
        servers.append(start_kgserve("kgserve, no cache", 0, url, work))
        if lib.infinity_available(args.infinity):
            for label, disk in (("infinity, --vector-disk-cache", True),
                                ("infinity, no cache", False)):
                try:
                    servers.append(start_infinity(label, args.infinity, disk, work))
                except RuntimeError as exc:
                    missing[label] = f"not available ({exc})"[:200]
        for s in servers:  # warm up on texts of their own
            drive(s.base, s.path, warm, work, 4, f"warm-{len(s.label)}-{s.proc.pid}")
        results = {name: alternate(servers, bodies, args.rounds, args.seconds, work, name)
                   for name, bodies in loads.items()}
    finally:
        for s in servers:
            lib.stop(s.proc)
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, missing, per, args)


def report(results: dict, missing: dict[str, str], per: int, args) -> None:
    print(f"\nMiniLM, {per} text(s) per request, 32 connections, {args.seconds:g} s per server "
          f"and workload in {args.rounds} alternating rounds (kgserve: 2 gunicorn workers)")
    print(f"{'server':<32}{'workload':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'hit ratio':>11}")
    for name, by_server in results.items():
        for label, (load, hit) in by_server.items():
            ratio = f"{hit:>11.2f}" if hit is not None else f"{'-':>11}"
            print(f"{label:<32}{name:<14}{load.rps:>9.1f}{load.p50_ms:>9.1f}{load.p99_ms:>9.1f}"
                  f"{load.errors:>8}{ratio}")
    for label, why in missing.items():
        print(f"{label:<32}{why}")

    def rps(name: str, label: str) -> float:
        return results[name][label][0].rps

    gain = rps("50% repeats", "kgserve, cache 256 MB") / rps("50% repeats", "kgserve, no cache")
    same = rps("0% repeats", "kgserve, cache 256 MB") / rps("0% repeats", "kgserve, no cache")
    print(f"\ncache vs no cache at 50% repeats: {gain:.2f}x (goal >= 1.8x: "
          f"{'met' if gain >= 1.8 else 'NOT met'})")
    print(f"cache vs no cache at 0% repeats:  {same:.2f}x (goal >= 0.97x: "
          f"{'met' if same >= 0.97 else 'NOT met'})")
    peer = "infinity, --vector-disk-cache"
    if peer in results["50% repeats"]:
        for name in results:
            print(f"kgserve with cache vs {peer} at {name}: "
                  f"{rps(name, 'kgserve, cache 256 MB') / rps(name, peer):.2f}x")


if __name__ == "__main__":
    main()
