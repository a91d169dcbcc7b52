"""The `make run` path: the flask CLI selects MiniLM, then kgserve.devserver serves and prints."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.support.kgs import MINILM, REPO, call, free_port
from tests.support.waiting import stop_process

BOUND = 300


@pytest.mark.gunicorn
@pytest.mark.export
def test_cli_set_then_devserver_serves_and_prints_the_examples(kg_url):
    bindir = Path(sys.executable).parent
    env = {**os.environ, "KG_DATABASE_URL": kg_url, "HF_HUB_OFFLINE": "1"}
    env.pop("KG_ADMIN_TOKEN", None)
    set_cmd = [str(bindir / "flask"), "--app", "kgserve", "embedding", "set", "--if-changed",
               "--allow-dimension-change", "--provider", "local", "--model-name", MINILM,
               "--dimensions", "384", "--fastest-backend"]  # as `make run` does
    out = subprocess.run(set_cmd, cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=BOUND, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["config_id"] == 2
    timed = re.findall(r"^  (torch|onnx|openvino) +(float32|int8) +(?:[\d.]+ texts/s|refused)",
                       out.stderr, re.MULTILINE)
    assert len(timed) == 5, out.stderr
    assert re.search(r"^timing 5 backends for .+ embedding 8 short texts one and eight per call",
                     out.stderr, re.MULTILINE), out.stderr
    # no library noise: NNCF's INFO notes, ONNX Runtime's root-logger advice, progress bars
    assert not re.search(r"^(INFO|WARNING):(nncf|root):|━|\d+%\|", out.stderr, re.MULTILINE), \
        out.stderr
    winner = re.search(r"^fastest: (\w+) (\w+)$", out.stderr, re.MULTILINE).groups()
    with psycopg.connect(kg_url) as conn:
        assert conn.execute("SELECT backend, precision FROM kg_api.embedding_config "
                            "WHERE active").fetchone() == winner
    again = subprocess.run(set_cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=BOUND, check=False)
    assert again.returncode == 0 and "already the active config" in again.stdout
    prepared = subprocess.run([str(bindir / "flask"), "--app", "kgserve", "embedding", "browser"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=BOUND,
                              check=False)  # as `make run` does next
    assert prepared.returncode == 0, prepared.stderr
    assert json.loads(prepared.stdout)["model_url"].startswith("/browser/models/all-MiniLM-L6-v2.")

    port = free_port()
    env["KG_BIND"] = f"127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "kgserve.devserver"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + BOUND
        while "Stop with Ctrl-C" not in seen and time.monotonic() < deadline:
            assert proc.poll() is None, seen[-3000:]
            # Raw reads: readline() would pull several lines into Python's buffer, where select()
            # cannot see them, and the loop would wait forever for the banner it already has.
            if sel.select(timeout=1):
                seen += os.read(proc.stderr.fileno(), 65536).decode("utf-8", "replace")
        assert "Stop with Ctrl-C" in seen, seen[-3000:]
        base = f"http://127.0.0.1:{port}"
        assert f"kgserve is ready on {base}" in seen and f"curl -s {base}/v1/embeddings" in seen
        assert f"backend {winner[0]} {winner[1]}" in seen, seen[-1500:]
        assert "OpenAI(base_url=" in seen
        assert f"open {base}/browser/" in seen
        with urllib.request.urlopen(f"{base}/browser/", timeout=30) as resp:
            assert resp.status == 200 and b"page.js" in resp.read()
        token = re.search(r"KG_ADMIN_TOKEN=(\S+)\s+\(generated for this run\)", seen).group(1)
        code, body = call(base, "POST", "/v1/embeddings", {"input": "hello", "model": MINILM})
        assert code == 200 and len(body["data"][0]["embedding"]) == 384
        req = urllib.request.Request(f"{base}/admin/embedding/config",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["model_name"] == MINILM
    finally:
        stop_process(proc, signal.SIGINT)
    assert proc.returncode == 0
    access_log = proc.stdout.read()
    assert "/v1/embeddings" in access_log  # the access log is on...
    assert "/readyz" not in access_log  # ...without the start's readiness probes


def test_the_way_out_says_the_local_database_keeps_running():
    from kgserve.devserver import closing_words

    assert "kgmigrate localdb stop" in closing_words({})
    assert closing_words({"KG_DATABASE_URL": "postgresql://db/kg"}) is None
    assert closing_words({"PGHOST": "db"}) is None
