"""Switching to the openai provider, served by the loopback OpenAI stand-in, through the real SDK."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from tests.support.kgs import MINILM, MINILM_BODY, OPENAI_BODY


@pytest.fixture
def stub_env(openai_stub, monkeypatch):
    openai_stub.reset()
    monkeypatch.setenv("OPENAI_API_KEY", openai_stub.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_stub.base_url)
    monkeypatch.setenv("KG_OPENAI_MAX_RETRIES", "0")
    return openai_stub


def active(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, provider FROM kg_api.embedding_config WHERE active"
                            ).fetchone()


def test_switch_from_local_to_openai_and_embed(client, admin, minilm, stub_env, caplog):
    from tests.support.openai_stub import stub_vector

    resp = client.post("/admin/embedding/config", json=OPENAI_BODY, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    out = client.post("/v1/embeddings", json={"input": ["alpha", "beta"], "dimensions": 256,
                                              "model": "text-embedding-3-small"})
    assert out.status_code == 200, out.get_json()
    body = out.get_json()
    assert body["model"] == "text-embedding-3-small"
    got = np.array(body["data"][1]["embedding"], dtype=np.float32)
    assert got.shape == (256,)
    assert np.allclose(got, stub_vector("text-embedding-3-small", "beta", 256), atol=1e-6)
    assert body["usage"]["prompt_tokens"] == 2
    status = client.get("/admin/embedding/config", headers=admin).get_json()["model_status"]
    assert status["device"] == "remote" and status["provider"] == "openai"
    assert stub_env.api_key not in caplog.text


def test_openai_without_a_key_is_refused_and_local_keeps_serving(client, admin, minilm, kg_url,
                                                                 monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    resp = client.post("/admin/embedding/config", json=OPENAI_BODY, headers=admin)
    assert resp.status_code == 422
    assert "OPENAI_API_KEY" in resp.get_json()["message"]
    assert active(kg_url) == (2, "local")
    out = client.post("/v1/embeddings", json={"input": "x"})
    assert out.status_code == 200 and out.get_json()["model"] == MINILM


def test_upstream_failure_is_a_json_502_in_openai_shape(client, admin, kg_url, stub_env):
    assert client.post("/admin/embedding/config", json=OPENAI_BODY,
                       headers=admin).status_code == 200
    stub_env.fail_next(1, status=500)
    out = client.post("/v1/embeddings", json={"input": "x"})
    assert out.status_code == 502
    err = out.get_json()["error"]
    assert err["code"] == "upstream_error" and err["type"] == "api_error"
    assert stub_env.api_key not in out.get_data(as_text=True)
    # and back to local: the dimension guard applies again
    back = {k: v for k, v in MINILM_BODY.items() if k != "allow_dimension_change"}
    assert client.post("/admin/embedding/config", json=back, headers=admin).status_code == 409
