"""Helpers for bench_speed.py: unique-text load with wrk, the raw model's speed, a baseline tree."""

from __future__ import annotations

import json
import os
import random
import resource
import secrets
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import serve_lib as lib

# Every request carries new texts: random words of the bench's prose, 4 to 16 of them, and a tag
# made of the run's salt and a counter, so no text repeats within a run, across runs or servers
# (kgserve caches embeddings).
_LUA = """
local words = {%(words)s}
local per, salt, n = %(per)d, "%(salt)s", 0
math.randomseed(%(seed)d)
local function tag(k)
  local s = ""
  repeat s = s .. string.char(97 + k %% 26); k = math.floor(k / 26) until k == 0
  return s
end
local function text()
  local w, len = {}, math.random(4, 16)
  for i = 1, len do w[i] = words[math.random(#words)] end
  n = n + 1
  w[len + 1] = salt .. tag(n)
  return '"' .. table.concat(w, " ") .. '"'
end
local headers = {["Content-Type"] = "application/json"}
request = function()
  local body
  if per == 1 then
    body = '{"input":' .. text() .. '}'
  else
    local items = {}
    for j = 1, per do items[j] = text() end
    body = '{"input":[' .. table.concat(items, ",") .. ']}'
  end
  return wrk.format("POST", nil, headers, body)
end
"""


def unique_texts(n: int, seed: int = 0) -> list[str]:
    """Texts drawn like the wrk script draws them (for the raw model runs)."""
    rng = random.Random(seed)
    salt = "".join(rng.choice(string.ascii_lowercase) for _ in range(3))
    out = []
    for k in range(n):
        words = [rng.choice(lib._WORDS) for _ in range(rng.randint(4, 16))]
        out.append(" ".join(words) + " " + salt + _tag(k + 1))
    return out


def _tag(k: int) -> str:
    s = ""
    while True:
        s += chr(97 + k % 26)
        k //= 26
        if k == 0:
            return s


def script(folder: Path, per: int) -> Path:
    """A wrk script whose every request holds `per` texts never sent before (a new salt)."""
    salt = "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    words = ", ".join(f'"{w}"' for w in lib._WORDS)
    path = folder / f"unique-{per}-{salt}.lua"
    path.write_text(_LUA % {"words": words, "per": per, "salt": salt,
                            "seed": secrets.randbelow(2**31)})
    return path


def wrk(url: str, per: int, connections: int, seconds: float, folder: Path,
        workers: list[int] = ()) -> tuple[lib.Load, float, float]:
    """One wrk run (1 thread) of fresh texts; (its figures, the CPU share wrk itself used, the
    CPU seconds `workers` used per text: what bounds throughput on a machine others share)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = cpu_seconds(workers)
    started = time.monotonic()
    load = lib.run_wrk(url, script(folder, per), connections, seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    per_text = (cpu_seconds(workers) - served) / max(load.requests * per, 1)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return load, cpu / max(time.monotonic() - started, 1e-9), per_text


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of `pids` so far (all their threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk_background(url: str, per: int, connections: int, seconds: float,
                   folder: Path) -> subprocess.Popen:
    """Start a wrk run of fresh texts and return at once (read it with lib.parse_wrk)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
           "--latency", "-s", str(script(folder, per)), url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


# -- the raw model ------------------------------------------------------------------------------
# A child process: load the provider on one thread, say "ready", wait for "go" on stdin, then
# time `mode` for `seconds` and print the figures. Two children side by side start together.
_RAW = """
import json, os, statistics, sys, time
from kgserve.providers import ProviderConfig, build_provider
folder, dims, backend, precision, mode, seconds = sys.argv[1:7]
dims, seconds = int(dims), float(seconds)
texts = json.loads(sys.stdin.readline())
p = build_provider(ProviderConfig("local", folder, dims, precision=precision, backend=backend,
                                  device="cpu", batch_size=32, num_threads=1))
p.load()
for k in range(0, 64, 32):
    p.encode(texts[k:k + 32])
print("ready", flush=True)
sys.stdin.readline()
size = 1 if mode == "one" else 32
done, i, times, start, cpu = 0, 64, [], time.perf_counter(), time.process_time()
while time.perf_counter() - start < seconds:
    chunk = [texts[(i + k) % len(texts)] for k in range(size)]
    t = time.perf_counter()
    p.encode(chunk)
    times.append(time.perf_counter() - t)
    done, i = done + size, i + size
print(json.dumps({"rate": done / (time.perf_counter() - start),
                  "cpu_ms": (time.process_time() - cpu) / done * 1000,
                  "p50_ms": statistics.median(times) * 1000}), flush=True)
"""


def raw(tree: Path, folder: Path, dims: int, backend: str, precision: str, mode: str,
        seconds: float, processes: int) -> list[dict]:
    """The model call of kgserve's provider in `tree` (no server, one thread each), in
    `processes` processes started together: each one's texts/s and p50 per call."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(tree)}
    texts = json.dumps(unique_texts(4096, seed=7)) + "\n"
    procs = [subprocess.Popen([sys.executable, "-c", _RAW, str(folder), str(dims), backend,
                               precision, mode, str(seconds)], cwd=tree, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(processes)]
    try:
        for p in procs:
            p.stdin.write(texts)
            p.stdin.flush()
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"raw {backend} {precision}: {p.stderr.read()[-400:]}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


class BaselineTree:
    """A detached git worktree of `ref` in a temporary folder, removed on exit."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.path = Path(tempfile.mkdtemp(prefix="kgbench-baseline-", dir="/tmp")) / "tree"

    def __enter__(self) -> Path:
        subprocess.run(["git", "worktree", "add", "--detach", str(self.path), self.ref],
                       cwd=lib.REPO, check=True, capture_output=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.path)], cwd=lib.REPO,
                       check=False, capture_output=True)
        self.path.parent.rmdir()


def commit_of(tree: Path) -> str:
    """The short commit of `tree`, with + when it has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, text=True,
                          capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree,
                           text=True, capture_output=True, check=True).stdout.strip()
    return head + ("+" if dirty else "")
