"""The admin API: read, validate-then-commit changes, dimension guard, reload, history."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.kgs import MINILM, MINILM_BODY, serve
from tests.support.waiting import join, start_threads, wait_for


def active_rows(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, provider, model_name FROM kg_api.embedding_config "
                            "WHERE active").fetchall()


def test_public_summary_has_the_seed_shape(client):
    resp = client.get("/embedding/config")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "config_id": 1, "provider": "openai", "model": "text-embedding-3-small",
        "dimensions": 1536, "precision": "float32", "supports_browser": False, "browser": None,
        "browser_unavailable": "the openai provider computes vectors with a secret key on its "
                               "own servers; only local models run in a browser",
        "resource_allocation": {"backend": "torch", "max_memory_mb": None, "num_threads": None,
                                "device": None, "batch_size": 8}}


def test_admin_get_returns_the_full_row_and_model_status(client, admin):
    body = client.get("/admin/embedding/config", headers=admin).get_json()
    assert body["id"] == 1 and body["active"] is True and body["model_name"] == "text-embedding-3-small"
    for col in ("provider", "embedding_dimensions", "precision", "backend", "max_memory_mb",
                "num_threads",
                "device", "batch_size", "max_seq_length", "normalize_embeddings", "created_at",
                "updated_at", "updated_by"):
        assert col in body
    assert body["model_status"]["state"] == "not_loaded"
    assert body["model_status"]["config_id"] is None


def test_dimension_change_is_refused_without_the_flag(client, admin, kg_url):
    body = {k: v for k, v in MINILM_BODY.items() if k != "allow_dimension_change"}
    resp = client.post("/admin/embedding/config", json=body, headers=admin)
    assert resp.status_code == 409
    err = resp.get_json()
    assert err["error"] == "dimension_change_refused" and "1536" in err["message"]
    assert "allow_dimension_change" in err["message"]
    assert active_rows(kg_url) == [(1, "openai", "text-embedding-3-small")]


def test_switch_to_local_minilm(client, admin, kg_url, minilm):
    assert minilm["success"] is True and minilm["reload_required"] is False
    assert minilm["config_id"] == 2 and MINILM in minilm["message"]
    assert active_rows(kg_url) == [(2, "local", MINILM)]
    status = client.get("/admin/embedding/config", headers=admin).get_json()
    assert status["model_status"]["state"] == "ready"
    assert status["model_status"]["config_id"] == 2
    assert status["model_status"]["device"] == "cpu"
    assert status["model_status"]["load_seconds"] > 0
    assert status["updated_by"] == "admin-api"
    summary = client.get("/embedding/config").get_json()
    assert summary["provider"] == "local" and summary["dimensions"] == 384
    assert summary["supports_browser"] is True
    history = client.get("/admin/embedding/configs", headers=admin).get_json()["configs"]
    assert [r["id"] for r in history] == [2, 1]
    assert [r["active"] for r in history] == [True, False]


def test_a_failed_load_changes_nothing_and_the_old_model_keeps_serving(client, admin, kg_url,
                                                                        minilm):
    before = client.post("/v1/embeddings", json={"input": "hello"}).get_json()
    bad = {**MINILM_BODY, "model_name": "nobody/not-a-model-anywhere"}
    resp = client.post("/admin/embedding/config", json=bad, headers=admin)
    assert resp.status_code == 422
    err = resp.get_json()
    assert err["success"] is False and err["error"] == "model_not_available"
    assert "nobody/not-a-model-anywhere" in err["message"]
    assert active_rows(kg_url) == [(2, "local", MINILM)]
    after = client.post("/v1/embeddings", json={"input": "hello"})
    assert after.status_code == 200
    assert after.get_json()["model"] == MINILM
    assert after.get_json()["data"] == before["data"]
    status = client.get("/admin/embedding/config", headers=admin).get_json()["model_status"]
    assert status["state"] == "ready" and "nobody/not-a-model-anywhere" in status["last_error"]


def test_an_unavailable_device_is_refused(client, admin, kg_url):
    import torch

    if torch.cuda.is_available():
        device = "mps"
    else:
        device = "cuda"
    resp = client.post("/admin/embedding/config", json={**MINILM_BODY, "device": device},
                       headers=admin)
    assert resp.status_code == 422
    assert resp.get_json()["error"] == "device_not_available"
    assert active_rows(kg_url) == [(1, "openai", "text-embedding-3-small")]


def test_over_max_memory_is_refused(client, admin, kg_url):
    resp = client.post("/admin/embedding/config", json={**MINILM_BODY, "max_memory_mb": 1},
                       headers=admin)
    assert resp.status_code == 422
    assert resp.get_json()["error"] == "resource_limit_exceeded"
    assert active_rows(kg_url) == [(1, "openai", "text-embedding-3-small")]


@pytest.mark.slow
def test_reload_rebuilds_from_the_active_row(client, admin, minilm):
    first = client.get("/admin/embedding/config", headers=admin).get_json()["model_status"]
    resp = client.post("/admin/embedding/config/reload", headers=admin)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["success"] is True and body["config_id"] == 2
    again = client.get("/admin/embedding/config", headers=admin).get_json()["model_status"]
    assert again["state"] == "ready" and again["config_id"] == 2
    assert again["load_seconds"] != first["load_seconds"] or again["load_seconds"] > 0


def test_history_limit(client, admin, minilm):
    rows = client.get("/admin/embedding/configs?limit=1", headers=admin).get_json()["configs"]
    assert [r["id"] for r in rows] == [2]
    resp = client.get("/admin/embedding/configs?limit=0", headers=admin)
    assert resp.status_code == 422 and resp.get_json()["param"] == "limit"


@pytest.mark.slow
def test_requests_during_a_switch_are_all_answered(app, client, admin, minilm, tiny_nomic_dir):
    import json
    import threading
    import urllib.request

    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer(base):
        while not stop.is_set():
            req = urllib.request.Request(f"{base}/v1/embeddings", data=b'{"input": "hi"}',
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                answers.append((resp.status, json.loads(resp.read())["model"]))

    with serve(app) as base:
        results, threads = start_threads([lambda: hammer(base)] * 2)
        # (a client that stops early has its error in results)
        wait_for(lambda: answers or not all(t.is_alive() for t in threads), "the first answers")
        resp = client.post("/admin/embedding/config", headers=admin, json={
            "provider": "local", "model_name": str(tiny_nomic_dir), "embedding_dimensions": 768,
            "precision": "float32", "device": "cpu", "allow_dimension_change": True})
        wait_for(lambda: any(m == str(tiny_nomic_dir) for _, m in answers[-4:])
                 or not all(t.is_alive() for t in threads), "answers from the new model")
        stop.set()
        join(threads)
    assert results == [None, None]  # neither client saw an error
    assert resp.status_code == 200
    assert {code for code, _ in answers} == {200}
    assert {m for _, m in answers} == {MINILM, str(tiny_nomic_dir)}
