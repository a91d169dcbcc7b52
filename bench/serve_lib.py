"""Helpers for the serving benchmarks: texts, a database, wrk runs, servers (kgserve, infinity-emb),
RSS, raw encode."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_PROSE = """how does postgres store vector embeddings for semantic search over documents and
concepts in a knowledge graph with fast nearest neighbour queries the model maps each sentence to
a point so similar meanings end up close together while unrelated text stays far apart indexes
like hnsw make lookups quick even for millions of rows users ask short questions about papers
people places events and code"""
_WORDS = _PROSE.split()


def texts(n: int = 256, seed: int = 0) -> list[str]:
    """Short search-style queries of 4 to 16 words, deterministic."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 120) -> tuple[int, dict]:
    """One request: (status, JSON body or {})."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip() else {}
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, {}
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}


def wait_until(check, seconds: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not ready within {seconds:g}s")


def start_database(root: Path):
    """A fast throwaway cluster with the project's schema applied by kgmigrate; (cluster, URL)."""
    from kgmigrate.postgres.localdb import LocalCluster

    cluster = LocalCluster(root / "pg", dbname="kg", fast=True, port=free_port())
    cluster.start()
    url = cluster.url()
    subprocess.run([sys.executable, "-m", "kgmigrate", "--database-url", url,
                    "--migrations-dir", str(REPO / "schema" / "migrations"),
                    "--backups-dir", str(root / "backups"), "up", "-y"],
                   check=True, capture_output=True, cwd=REPO)
    return cluster, url


def bodies(sample: list[str], model: str) -> list[str]:
    """/v1/embeddings request bodies, one text each."""
    return [json.dumps({"input": t, "model": model}) for t in sample]


# -- wrk -----------------------------------------------------------------------------------
_LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n %% #bodies) + 1])
end
"""


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def wrk_script(folder: Path, bodies: list[str]) -> Path:
    """Write a wrk Lua script that POSTs `bodies` in turn."""
    lua = ", ".join(f"[==[{b}]==]" for b in bodies)
    path = folder / "post.lua"
    path.write_text(_LUA % {"bodies": lua})
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> Load:
    """Drive `url` with wrk (1 thread, keep-alive) and parse its report."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "--latency",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> Load:
    def ms(text: str) -> float:
        num, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(num) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(rps, p50, p99, errors + (int(non2xx.group(1)) if non2xx else 0), total)


def drive_count(url: str, script: Path, total: int, connections: int = 32) -> Load:
    """Send about `total` requests (wrk runs for a time: estimate it from a short probe)."""
    probe = run_wrk(url, script, connections, 3)
    left = max(total - probe.requests, 0)
    if not left:
        return probe
    rest = run_wrk(url, script, connections, max(left / max(probe.rps, 1.0), 1.0))
    rest.requests += probe.requests
    return rest


# -- processes -----------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    """Resident memory of one process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 30) -> None:
    """Stop a server we started (its own process group) and wait for it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def start_gunicorn(port: int, env: dict[str, str], log: Path, root: Path = REPO
                   ) -> subprocess.Popen:
    """`gunicorn -c gunicorn.conf.py kgserve:app` from `root` (a checkout of this repository,
    whose packages it imports; default this one), on loopback."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [str(gunicorn), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "kgserve:app"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(root), **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_kgserve(env: dict[str, str], log: Path, what: str = "kgserve", root: Path = REPO
                  ) -> tuple[subprocess.Popen, str]:
    """gunicorn on a free port, once /healthz answers; (process, base URL). Stopped on failure."""
    port = free_port()
    proc = start_gunicorn(port, env, log, root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http("GET", base + "/healthz")[0] == 200, 120, what, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, base


def select_model(base: str, token: str, config: dict, timeout: float = 1800) -> tuple[int, dict]:
    """Activate a local model on the CPU through the admin API; (status, JSON body)."""
    body = {"provider": "local", "device": "cpu", "allow_dimension_change": True,
            "updated_by": "bench", **config}
    return http("POST", base + "/admin/embedding/config", body,
                {"Authorization": f"Bearer {token}"}, timeout=timeout)


def wait_workers(proc: subprocess.Popen, base: str, token: str, config_id: int,
                 workers: int) -> dict[int, dict]:
    """Wait until each of `workers` reports `config_id` loaded (they follow it by NOTIFY);
    return each one's model_status by pid."""
    admin = {"Authorization": f"Bearer {token}"}
    seen: dict[int, dict] = {}

    def converged() -> bool:
        for _ in range(4 * workers):
            got = http("GET", base + "/admin/embedding/config", None, admin)[1]
            ms = got.get("model_status") or {}
            if ms.get("pid"):
                seen[ms["pid"]] = ms
        return len(seen) >= workers and all(
            m["config_id"] == config_id and m["state"] == "ready" for m in seen.values())

    wait_until(converged, 1800, "workers", proc)
    return seen


def start_infinity(binary: str, model_dir: Path, name: str, port: int, log: Path, *flags: str,
                   cwd: Path | None = None) -> subprocess.Popen:
    """infinity-emb v2 on `model_dir` on the CPU, offline, with `flags` (e.g. --engine torch)."""
    cmd = [binary, "v2", "--model-id", str(model_dir), "--served-model-name", name,
           "--port", str(port), "--device", "cpu", *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd)


def infinity_available(binary: str | None) -> bool:
    return bool(binary) and (Path(binary).is_file() or shutil.which(binary) is not None)


# -- raw sentence-transformers ---------------------------------------------------------------
# Source for child processes: texts/s of `encode(chunk, size)` over `texts` for `seconds`.
RATE = """
def rate(size):
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encode([texts[(i + k) % len(texts)] for k in range(size)], size)
        done, i = done + size, i + size
    return done / (time.perf_counter() - start)
"""

_RAW = """
import json, sys, time
from sentence_transformers import SentenceTransformer
model_dir, seconds, texts = sys.argv[1], float(sys.argv[2]), json.loads(sys.stdin.read())
m = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
m.encode(texts[:32], batch_size=32)
def encode(chunk, size):
    m.encode(chunk, batch_size=size)
""" + RATE + """
print(json.dumps({"one": rate(1), "batch32": rate(32)}))
"""


def raw_encode(model_dir: Path, sample: list[str], seconds: float) -> dict[str, float]:
    """sentence-transformers encode texts/s: one text per call, and 32 per call."""
    out = subprocess.run([sys.executable, "-c", _RAW, str(model_dir), str(seconds)],
                         input=json.dumps(sample), capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])
