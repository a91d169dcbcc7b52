"""Real gunicorn, two workers: both follow config changes; the database restarts underneath."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support.gunicorn import BOUND
from tests.support.kgs import MINILM, MINILM_BODY, OPENAI_BODY, call
from tests.support.waiting import wait_for

pytestmark = pytest.mark.gunicorn


def test_two_workers_follow_a_switch_to_openai_and_back(gunicorn_server, openai_stub):
    from tests.support.openai_stub import stub_vector

    server = gunicorn_server
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


def test_the_database_restarts_under_the_running_server(gunicorn_server):
    server = gunicorn_server
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
        # An answer at all (the client gives up after 60 s) is the point: the pool's bounded wait
        # turns a dead database into a 503 instead of a request that hangs.
        assert code == 503 and err["error"] == "database_unavailable"
        print(f"admin write under gunicorn answered 503 in {took:.2f} s")
    finally:
        server.cluster.start()

    def write_ok():
        code, out = call(server.base, "POST", "/admin/embedding/config",
                         {**MINILM_BODY, "max_seq_length": 200}, admin=True)
        return out if code == 200 else None

    out = wait_for(write_ok, "admin writes to work again", BOUND, interval=0.5)
    server.converge(out["config_id"])  # every worker's listener reconnected and followed


def test_a_worker_started_during_an_outage_serves_the_last_known_config(gunicorn_server):
    """gunicorn respawns a killed worker while the database is down: it serves the config kept
    on disk (marked stale) instead of answering 503 until the database returns."""
    import os
    import signal

    server = gunicorn_server
    code, body = call(server.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    config_id = body["config_id"]
    before = server.converge(config_id)
    server.cluster.stop(mode="fast")
    try:
        victim = next(iter(before))
        os.kill(victim, signal.SIGKILL)  # gunicorn starts another worker at once

        def respawned_and_ready():
            for _ in range(6):  # reach the new worker too: it loads on its first request
                call(server.base, "POST", "/v1/embeddings", {"input": "outage"})
            return any(pid not in before and s["state"] == "ready"
                       and s["config_id"] == config_id
                       for pid, s in server.statuses().items())

        wait_for(respawned_and_ready, lambda: f"a respawned worker serving config {config_id}; "
                 f"log: {server.log.read_text()[-2000:]}", BOUND, interval=0.5)
        answers = [call(server.base, "POST", "/v1/embeddings", {"input": f"text {i}"})
                   for i in range(12)]
        assert [code for code, _ in answers] == [200] * 12
        code, config = call(server.base, "GET", "/admin/embedding/config", admin=True)
        assert code == 200 and config["stale"] is True and config["id"] == config_id
    finally:
        server.cluster.start()
