"""Load benchmark: kgserve on each CPU backend vs infinity-emb (torch, optimum) vs fastembed.

    flock /work/bench.lock .venv/bin/python bench/bench_serve.py [--models minilm,nomic]
        [--seconds 15] [--more-requests 10000] [--infinity /work/benchtools/infinity/bin/infinity_emb]
        [--fastembed /work/benchtools/fastembed/bin/python] [--backends torch:float32,onnx:int8]

Starts a throwaway PostgreSQL (kgmigrate's LocalCluster) in /tmp, applies the schema with
kgmigrate, serves with `gunicorn -c gunicorn.conf.py kgserve:app`, selects the model and each
backend/precision through the admin API (the accuracy guard may refuse int8), and drives it with
wrk (32 concurrent single-text clients, then one client). Then infinity-emb with --engine torch
and --engine optimum on the same model, fastembed on kgserve's own ONNX export, and raw encode
(no server) with every backend. Prints requests/s, p50/p99, errors, resident memory of the
workers after the warm-up and after N more requests, each backend's min cosine to torch float32
over the guard's probe texts, and the ratios against the goals of issues 5 and 13.
Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import backends_lib as blib
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


def measure(base: str, path: str, payloads: list[str], work: Path, seconds: float,
            after_warmup=lambda: None, warmup: int = 1000) -> dict:
    """Warm up with `warmup` requests, then 32 clients and 1 client for `seconds` each."""
    url = base + path
    script = lib.wrk_script(work, payloads)
    warm = lib.drive_count(url, script, warmup)
    after_warmup()
    many = lib.run_wrk(url, script, 32, seconds)
    one = lib.run_wrk(url, script, 1, seconds)
    return {"many": many, "one": one, "script": script, "done": warm.requests}


def bench_kgserve(folder: Path, dims: int, db_url: str, payloads: list[str], work: Path,
                  seconds: float, more: int, backend: str = "torch", precision: str = "float32",
                  warmup: int = 1000) -> dict | str:
    token = secrets.token_hex(16)
    proc, base = lib.start_kgserve({"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token},
                                   work / "gunicorn.log")
    try:
        code, body = lib.select_model(base, token, {
            "model_name": str(folder), "embedding_dimensions": dims, "precision": precision,
            "backend": backend, "batch_size": 32})
        if code == 422:
            return f"refused: {body.get('message', body)}"[:300]
        if code != 200:
            raise RuntimeError(f"selecting the model failed: {code} {body}")
        workers = lib.children(proc.pid)
        seen = lib.wait_workers(proc, base, token, body["config_id"], len(workers))
        accuracy = next(iter(seen.values())).get("accuracy") or {}
        rss: list[float] = []
        result = measure(base, "/v1/embeddings", payloads, work, seconds,
                         lambda: rss.append(sum(lib.rss_mib(p) for p in workers)), warmup)
        result["guard_min"] = accuracy.get("min_cosine", 1.0 if backend == "torch" else None)
        result["base"] = base
        result["rss_1000"] = rss[0]
        result["rss_series"], result["more_done"], result["more_errors"] = [], 0, 0
        for _ in range(5):  # in steps, to see whether memory levels off or keeps growing
            step = lib.drive_count(base + "/v1/embeddings", result["script"], more // 5)
            result["more_done"] += step.requests
            result["more_errors"] += step.errors
            result["rss_series"].append(sum(lib.rss_mib(p) for p in workers))
        result["rss_more"] = result["rss_series"][-1]
        result["workers"] = len(workers)
        result["folder"] = folder
        return result
    finally:
        lib.stop(proc)


def bench_infinity(binary: str, folder: Path, payloads_for, work: Path,
                   seconds: float, engine: str = "torch", probes=None, ref=None,
                   warmup: int = 1000) -> dict | str:
    port = lib.free_port()
    log = work / f"infinity-{engine}.log"
    proc = lib.start_infinity(binary, folder, "bench-model", port, log, "--engine", engine)
    base = f"http://127.0.0.1:{port}"
    try:
        lib.wait_until(lambda: lib.http("GET", base + "/models")[0] == 200, 600, "infinity",
                       proc)
        payloads = payloads_for("bench-model")
        code, _ = lib.http("POST", base + "/embeddings", json.loads(payloads[0]))
        if code != 200:
            return f"not available (answered {code})"
        result = measure(base, "/embeddings", payloads, work, seconds, warmup=warmup)
        result["rss"] = lib.rss_mib(proc.pid)
        result["min_cos"] = blib.served_min_cosine(base + "/embeddings", "bench-model", probes,
                                                   ref) if probes else None
        return result
    except RuntimeError as exc:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return f"not available ({exc}; {' / '.join(tail)[:300]})"
    finally:
        lib.stop(proc)


def _row(label: str, r, extra: str = "") -> str:
    return f"{label:<30}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.errors:>7}{extra}"


def report(name: str, ours: dict, infs: dict, raws: dict, fe: dict | str) -> None:
    print(f"\n== {name} ==")
    print(f"{'':<30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}  min cos   RSS MiB (growth)")
    for (backend, precision), res in ours.items():
        label = f"kgserve {backend} {precision}"
        if isinstance(res, str):
            print(f"{label:<30} {res}")
            continue
        grow = (res["rss_more"] / res["rss_1000"] - 1) * 100
        cos = f"{res['guard_min']:.4f}" if res.get("guard_min") is not None else "   -  "
        mem = f"  {cos}   {res['rss_1000']:.0f} -> {res['rss_more']:.0f} ({grow:+.1f}%)"
        print(_row(f"{label}  32 clients", res["many"], mem))
        print(_row(f"{label}   1 client", res["one"]))
    for engine, res in infs.items():
        if isinstance(res, str):
            print(f"{'infinity --engine ' + engine:<30} {res}")
            continue
        cos = f"{res['min_cos']:.4f}" if res.get("min_cos") is not None else "   -  "
        print(_row(f"infinity {engine}  32 clients", res["many"], f"  {cos}   {res['rss']:.0f}"))
        print(_row(f"infinity {engine}   1 client", res["one"]))
    print("raw encode, texts/s (one per call | 32 per call):")
    for label, raw in raws.items():
        text = raw if isinstance(raw, str) else f"{raw['one']:8.1f} | {raw['batch32']:8.1f}"
        print(f"  {label:<28}{text}")
    if isinstance(fe, dict):
        print(f"  {'fastembed (kgserve onnx)':<28}{fe['one']:8.1f} | {fe['batch32']:8.1f}"
              f"   min cos {fe['min_cos']:.4f}")
    else:
        print(f"  {'fastembed':<28}{fe}")
    goals(ours, infs, raws)


def goals(ours: dict, infs: dict, raws: dict) -> None:
    base = ours.get(("torch", "float32"))
    served = {k: v for k, v in ours.items() if isinstance(v, dict)}
    if not isinstance(base, dict) or len(served) < 2:
        return
    best_key = max((k for k in served if k[0] != "torch"), key=lambda k: served[k]["many"].rps)
    best = served[best_key]
    fastest_one = min(served, key=lambda k: served[k]["one"].p50_ms)
    label = " ".join(best_key)
    print(f"best guarded backend at 32 clients: {label}")
    print(f"  32 clients req/s vs kgserve torch:   {best['many'].rps / base['many'].rps:.2f}x"
          f"  (goal >= 1.5)")
    print(f"  1 client p50 vs kgserve torch:       "
          f"{best['one'].p50_ms / base['one'].p50_ms:.2f}x  (goal <= 0.45; lowest p50: "
          f"{' '.join(fastest_one)} {served[fastest_one]['one'].p50_ms / base['one'].p50_ms:.2f}x)")
    ran = {e: r for e, r in infs.items() if isinstance(r, dict)}
    if ran:
        engine = max(ran, key=lambda e: ran[e]["many"].rps)
        print(f"  vs best infinity engine ({engine}), 32 clients: "
              f"{best['many'].rps / ran[engine]['many'].rps:.2f}x  (goal >= 1.2)")
    grow = (best["rss_more"] / best["rss_1000"] - 1) * 100
    print(f"  RSS growth over {best['more_done']} more requests: {grow:+.1f}%  (goal < 10%); "
          f"in fifths: " + " ".join(f"{m:.0f}" for m in best["rss_series"]))
    raw = raws.get("torch float32")
    if isinstance(raw, dict):
        print(f"  kgserve torch 32 clients / raw torch batch 32: "
              f"{base['many'].rps / raw['batch32']:.2f}x (issue 5 goal >= 0.60)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,nomic")
    parser.add_argument("--seconds", type=float, default=15.0, help="per wrk run")
    parser.add_argument("--more-requests", type=int, default=10000,
                        help="requests after the warm-up before RSS is read again (MiniLM; the "
                             "nomic-sized model gets a twentieth)")
    parser.add_argument("--raw-seconds", type=float, default=8.0)
    parser.add_argument("--backends", default=",".join(f"{b}:{p}" for b, p in blib.MATRIX))
    parser.add_argument("--infinity", default="/work/benchtools/infinity/bin/infinity_emb")
    parser.add_argument("--engines", default="torch,optimum")
    parser.add_argument("--fastembed", default="/work/benchtools/fastembed/bin/python")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    matrix = [tuple(item.split(":")) for item in args.backends.split(",")]
    print(f"load average before: {os.getloadavg()}; gunicorn args from env: "
          f"{os.environ.get('GUNICORN_CMD_ARGS', '(none)')}", flush=True)
    sample = lib.texts()
    from kgserve.providers.export.probes import probe_texts

    probes = list(probe_texts())
    with tempfile.TemporaryDirectory(prefix="kgbench-", dir="/tmp") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the postgres user must reach the cluster below it
        cluster, db_url = lib.start_database(work)
        try:
            for name in args.models.split(","):
                folder, dims = model_folder(name)
                started = time.monotonic()
                small = name != "minilm"
                warmup = 200 if small else 1000
                more = args.more_requests // 20 if small else args.more_requests
                ref = blib.reference(folder, probes)
                ours: dict = {}
                for backend, precision in matrix:
                    ours[(backend, precision)] = bench_kgserve(
                        folder, dims, db_url, lib.bodies(sample, str(folder)), work, args.seconds,
                        more, backend, precision, warmup)
                    print(f"  kgserve {backend} {precision} done ({time.monotonic() - started:.0f}s)",
                          flush=True)
                infs: dict = {}
                for engine in args.engines.split(","):
                    if not engine or not lib.infinity_available(args.infinity):
                        infs[engine or "-"] = "not installed"
                        continue
                    infs[engine] = bench_infinity(args.infinity, folder,
                                                  lambda m: lib.bodies(sample, m), work,
                                                  args.seconds,
                                                  engine, probes, ref, warmup)
                raws = {f"{b} {p}": blib.raw_kgserve(folder, dims, b, p, sample, args.raw_seconds)
                        for b, p in matrix if b != "torch"}
                raws = {"torch float32": lib.raw_encode(folder, sample, args.raw_seconds), **raws}
                fe = fastembed_run(args.fastembed, ours, dims, sample, probes, ref,
                                   args.raw_seconds)
                report(f"{name} ({folder.name}, {dims}-d)", ours, infs, raws, fe)
                print(f"({time.monotonic() - started:.0f}s)", flush=True)
        finally:
            cluster.stop(mode="immediate")


def fastembed_run(python: str, ours: dict, dims: int, sample, probes, ref, seconds):
    """fastembed on the ONNX float32 export kgserve made (the same files)."""
    served = ours.get(("onnx", "float32"))
    if not isinstance(served, dict):
        return "no onnx float32 export to load"
    from kgserve.providers.export.cache import Exporter, ExportSpec

    folder = served["folder"]
    entry = Exporter(str(folder), folder, lambda: None).entry_dir(ExportSpec("onnx", "float32"))
    if not entry.is_dir():
        return f"no onnx float32 export in {entry}"
    out = blib.fastembed(python, entry, "onnx/model.onnx", dims, sample, probes, seconds)
    if isinstance(out, dict):
        out["min_cos"] = blib.min_cosine(out.pop("probes"), ref)
    return out


if __name__ == "__main__":
    main()
