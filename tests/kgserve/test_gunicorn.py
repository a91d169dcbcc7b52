"""Real gunicorn, two workers: both follow config changes; the database restarts underneath."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.kgserve.conftest import ADMIN_TOKEN, MINILM, MINILM_BODY, REPO, migrate
from tests.support.pg import create_database, destroy_cluster, make_cluster

BOUND = 180  # generous bound on waiting for convergence; not a speed assertion
OPENAI_BODY = {"provider": "openai", "model_name": "text-embedding-3-small",
               "embedding_dimensions": 1536, "precision": "float32",
               "allow_dimension_change": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None, admin=False):
    """One request on a fresh connection: (status, JSON body)."""
    headers = {"Content-Type": "application/json"}
    if admin:
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Server:
    def __init__(self, base: str, proc: subprocess.Popen, log: Path, cluster, url: str):
        self.base, self.proc, self.log, self.cluster, self.url = base, proc, log, cluster, url

    def statuses(self, rounds: int = 16) -> dict[int, dict]:
        """Ask the admin status many times in parallel; return the latest status per worker pid."""
        seen: dict[int, dict] = {}
        with ThreadPoolExecutor(4) as pool:
            for code, body in pool.map(lambda _: call(self.base, "GET",
                                                      "/admin/embedding/config", admin=True),
                                       range(rounds)):
                if code == 200:
                    seen[body["model_status"]["pid"]] = body["model_status"]
        return seen

    def converge(self, config_id: int, workers: int = 2) -> dict[int, dict]:
        """Wait until every worker serves `config_id` (bounded generously)."""
        deadline = time.monotonic() + BOUND
        latest: dict[int, dict] = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            latest.update(self.statuses())
            if len(latest) >= workers and all(s["config_id"] == config_id and
                                              s["state"] == "ready" for s in latest.values()):
                return latest
            time.sleep(0.2)
        pytest.fail(f"workers did not converge on {config_id}: {latest}\n"
                    f"{self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, openai_stub):
    cluster = make_cluster("kggu-")
    tmp = tmp_path_factory.mktemp("gunicorn")
    url = create_database(cluster)
    migrate(url, tmp / "backups")
    port = free_port()
    env = {**os.environ, "KG_DATABASE_URL": url, "KG_ADMIN_TOKEN": ADMIN_TOKEN,
           "OPENAI_API_KEY": openai_stub.api_key, "OPENAI_BASE_URL": openai_stub.base_url,
           "KG_POLL_INTERVAL": "2", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log = tmp / "gunicorn.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "-w", "2",
             "--bind", f"127.0.0.1:{port}", "kgserve:app"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}", proc, log, cluster, url)
    try:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if call(srv.base, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        destroy_cluster(cluster)
        text = log.read_text()
        assert "Traceback" not in text, text[-5000:]
        assert ADMIN_TOKEN not in text and openai_stub.api_key not in text


def test_two_workers_follow_a_switch_to_openai_and_back(server, openai_stub):
    from tests.support.openai_stub import stub_vector

    server.converge(1)  # the seed's openai row, served by both workers through the stub
    log = server.log.read_text()
    assert "provider=openai model=text-embedding-3-small dimensions=1536 device=remote" in log
    code, body = call(server.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    t0 = time.monotonic()
    server.converge(body["config_id"])
    print(f"both workers served MiniLM {time.monotonic() - t0:.2f} s after the change")
    code, out = call(server.base, "POST", "/v1/embeddings", {"input": "hello"})
    assert code == 200 and out["model"] == MINILM and len(out["data"][0]["embedding"]) == 384

    code, body = call(server.base, "POST", "/admin/embedding/config", OPENAI_BODY, admin=True)
    assert code == 200, body
    t0 = time.monotonic()
    statuses = server.converge(body["config_id"])
    print(f"both workers served openai {time.monotonic() - t0:.2f} s after the change")
    assert {s["model"] for s in statuses.values()} == {"text-embedding-3-small"}
    assert {s["device"] for s in statuses.values()} == {"remote"}
    for _ in range(4):
        code, out = call(server.base, "POST", "/v1/embeddings", {"input": ["a b", "c"]})
        assert code == 200 and out["model"] == "text-embedding-3-small"
        got = np.array(out["data"][1]["embedding"], dtype=np.float32)
        assert np.allclose(got, stub_vector("text-embedding-3-small", "c"), atol=1e-6)
    assert openai_stub.embedding_requests()


def test_the_database_restarts_under_the_running_server(server):
    code, body = call(server.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    server.converge(body["config_id"])

    server.cluster.stop(mode="fast")
    try:
        for _ in range(4):
            code, out = call(server.base, "POST", "/v1/embeddings", {"input": "no database"})
            assert code == 200 and out["model"] == MINILM
        code, summary = call(server.base, "GET", "/embedding/config")
        assert code == 200 and summary["model"] == MINILM
        t0 = time.monotonic()
        code, err = call(server.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
        took = time.monotonic() - t0
        assert code == 503 and err["error"] == "database_unavailable"
        assert took < 30, took  # generous; the target is 5 s
        print(f"admin write under gunicorn answered 503 in {took:.2f} s")
    finally:
        server.cluster.start()

    body = {**MINILM_BODY, "max_seq_length": 200}
    deadline = time.monotonic() + BOUND
    while True:
        code, out = call(server.base, "POST", "/admin/embedding/config", body, admin=True)
        if code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 200, out
    server.converge(out["config_id"])  # every worker's listener reconnected and followed
