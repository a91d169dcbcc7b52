"""Browser-side embeddings (issue 15): time to first vector, and a query in the page against a
round trip to /v1/embeddings, idle and under 32-client load.

    flock /work/bench.lock .venv/bin/python bench/bench_browser.py [--queries 40] [--seconds 20]

Starts a throwaway PostgreSQL, `gunicorn -c gunicorn.conf.py kgserve:app` on MiniLM (torch
float32, as the config a page follows), prepares the browser export (`flask embedding browser`),
then drives Debian's headless Chromium with playwright:
- time to first vector in a fresh browser profile (module + transformers.js + WASM runtime +
  model download, session creation, first inference), float32 and int8-weight graphs, and again
  in a second page of the same profile (everything from the browser's caches);
- per-query latency of `embed([q])` in the page vs `serverEmbed([q])` (a POST /v1/embeddings
  round trip from the same page), one short query at a time, first with the server idle, then
  while wrk keeps 32 clients on /v1/embeddings.
Browser and server share this machine's cores (here 2): under load the page's WebAssembly
competes with the workers, which a user's own machine would not. Needs `wrk` and `chromium`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.*` as bench/x.py too

from bench import serve_lib as lib

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FIRST_VECTOR = """async (quantized) => {
  const t0 = performance.now();
  const kg = await import('/browser/kgembed.js');
  kg.configure({ quantized, followSeconds: 0 });
  await kg.embed(['hello world'], { inputType: 'query' });
  return { sinceNavigation: performance.now(), inPage: performance.now() - t0 };
}"""
LATENCY = """async ({ queries, which }) => {
  const kg = await import('/browser/kgembed.js');
  const out = [];
  for (const q of queries) {
    const t = performance.now();
    if (which === 'browser') await kg.embed([q], { inputType: 'query' });
    else await kg.serverEmbed([q], { inputType: 'query' });
    out.push(performance.now() - t);
  }
  return out;
}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency(page, queries: list[str]) -> dict[str, list[float]]:
    """Interleave browser and server rounds so both see the same conditions."""
    got: dict[str, list[float]] = {"browser": [], "server": []}
    for start in range(0, len(queries), 5):
        chunk = queries[start:start + 5]
        for which in ("browser", "server"):
            got[which] += page.evaluate(LATENCY, {"queries": chunk, "which": which})
    return got


def row(label: str, ms: list[float]) -> str:
    return (f"  {label:<34} p50 {statistics.median(ms):8.1f} ms   p95 {pct(ms, 95):8.1f} ms"
            f"   n={len(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0, help="wrk's load per run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch

    print(f"load average before: {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="kgbench-browser-"))
    work.chmod(0o755)  # the postgres user runs the cluster inside it
    cluster, db_url = lib.start_database(work)
    token = secrets.token_hex(16)
    env = {"KG_DATABASE_URL": db_url, "KG_ADMIN_TOKEN": token}
    proc = None
    try:
        proc, base = lib.start_kgserve(env, work / "gunicorn.log")
        code, body = lib.select_model(base, token, {
            "model_name": MINILM, "embedding_dimensions": 384, "precision": "float32"})
        assert code == 200, body
        flask = Path(sys.executable).with_name("flask")
        prepared = subprocess.run([str(flask), "--app", "kgserve", "embedding", "browser"],
                                  cwd=lib.REPO, env={**os.environ, **env}, capture_output=True,
                                  text=True, check=True, timeout=1800)
        export = json.loads(prepared.stdout)
        folder = Path(export["folder"])
        sizes = {n: (folder / "onnx" / n).stat().st_size / 2**20
                 for n in ("model.onnx", "model_quantized.onnx")}
        print(f"browser export: {export['model_url']}  model.onnx {sizes['model.onnx']:.1f} MiB,"
              f" model_quantized.onnx {sizes['model_quantized.onnx']:.1f} MiB, quantized min "
              f"cosine {export['accuracy'].get('min_cosine', float('nan')):.4f} to torch float32")
        lib.wait_until(lambda: lib.http("POST", base + "/v1/embeddings",
                                        {"input": "warm"})[0] == 200, 600, "model", proc)
        script = lib.wrk_script(work, lib.bodies(lib.texts(), MINILM))
        queries = lib.texts(args.queries, seed=7)
        with sync_playwright() as pw:
            browser = launch(pw)
            print("\ntime to first vector (ms; fresh profile = downloads everything):")
            for quantized in (False, True):
                context = browser.new_context()
                try:
                    for attempt in ("fresh profile", "second page, cached"):
                        page = context.new_page()
                        page.set_default_timeout(600_000)
                        page.goto(base + "/healthz")  # same origin, nothing else loaded
                        t = page.evaluate(FIRST_VECTOR, quantized)
                        graph = "int8 weights" if quantized else "float32"
                        print(f"  {graph:<13} {attempt:<21} {t['inPage']:8.0f} ms in page "
                              f"({t['sinceNavigation']:.0f} ms since navigation)", flush=True)
                        page.close()
                finally:
                    context.close()
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(600_000)
            page.goto(base + "/healthz")
            page.evaluate(FIRST_VECTOR, True)  # the server's default: int8 weights if accurate
            latency(page, queries[:5])  # warm both paths
            idle = latency(page, queries)
            loaded: dict[str, list[float]] = {}
            result: dict[str, lib.Load] = {}
            wrk = threading.Thread(target=lambda: result.setdefault(
                "load", lib.run_wrk(base + "/v1/embeddings", script, 32, args.seconds)))
            wrk.start()
            try:
                loaded = latency(page, queries)
            finally:
                wrk.join()
            context.close()
            browser.close()
        load = result["load"]
        print("\none short query at a time (int8-weight graph in the page; MiniLM torch float32"
              " on the server):")
        print(row("browser embed(), server idle", idle["browser"]))
        print(row("POST /v1/embeddings, server idle", idle["server"]))
        print(row("browser embed(), 32 clients", loaded["browser"]))
        print(row("POST /v1/embeddings, 32 clients", loaded["server"]))
        print(f"  (the 32 wrk clients meanwhile: {load.rps:.1f} req/s, p50 {load.p50_ms:.1f} ms,"
              f" p99 {load.p99_ms:.1f} ms, {load.errors} errors)")
        for label, got in (("idle", idle), ("32 clients", loaded)):
            ratio = statistics.median(got["server"]) / statistics.median(got["browser"])
            print(f"  {label}: server round trip p50 / browser p50 = {ratio:.2f}x")
    finally:
        if proc is not None:
            lib.stop(proc)
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
