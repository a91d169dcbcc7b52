"""`truncate`, usage.prompt_tokens and truncated_inputs with the real MiniLM (max_seq_length 256)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.support.kgs import ADMIN_TOKEN, MINILM, MINILM_BODY, serve

LONG = "word " * 400  # 402 tokens with [CLS] and [SEP]: longer than MiniLM's 256
SHORT = "hello world"  # 4 tokens


def model_calls() -> float:
    return REGISTRY.get_sample_value("kgserve_inference_seconds_count") or 0.0


@pytest.fixture(params=[True, False], ids=["batching", "no-batching"])
def served(request, make):
    app = make(BATCHING=request.param)
    client = app.test_client()
    resp = client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 200, resp.get_json()
    return app, client


def test_truncation_is_reported_and_tokens_are_the_ones_the_model_saw(served):
    _, client = served
    resp = client.post("/v1/embeddings", json={"input": [SHORT, LONG, LONG]})
    assert resp.status_code == 200
    assert resp.headers["x-truncated-inputs"] == "2"
    assert resp.get_json()["usage"] == {"prompt_tokens": 4 + 256 + 256,
                                        "total_tokens": 4 + 256 + 256, "truncated_inputs": 2}
    plain = client.post("/v1/embeddings", json={"input": SHORT, "truncate": True})
    assert plain.headers["x-truncated-inputs"] == "0"
    assert plain.get_json()["usage"]["truncated_inputs"] == 0


def test_truncate_false_refuses_a_long_input_and_computes_nothing(served):
    _, client = served
    before = model_calls()
    resp = client.post("/v1/embeddings", json={"input": [SHORT, LONG], "truncate": False})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "input_too_long" and error["param"] == "input"
    assert "input[1]" in error["message"] and "402 tokens" in error["message"]
    assert "256" in error["message"]
    assert model_calls() == before
    fits = client.post("/v1/embeddings", json={"input": [SHORT], "truncate": False})
    assert fits.status_code == 200 and fits.headers["x-truncated-inputs"] == "0"


def test_truncate_must_be_a_boolean(client, minilm):
    resp = client.post("/v1/embeddings", json={"input": SHORT, "truncate": "no"})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == "truncate"


@pytest.mark.slow
def test_the_openai_sdk_reads_the_extra_usage_and_the_refusal(app, minilm):
    import openai

    with serve(app) as base:
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        raw = sdk.embeddings.with_raw_response.create(model=MINILM, input=[SHORT, LONG])
        assert raw.headers["x-truncated-inputs"] == "1"
        result = raw.parse()
        assert len(result.data) == 2 and len(result.data[1].embedding) == 384
        assert result.usage.prompt_tokens == result.usage.total_tokens == 4 + 256
        assert result.usage.model_extra == {"truncated_inputs": 1}
        with pytest.raises(openai.BadRequestError) as info:
            sdk.embeddings.create(model=MINILM, input=[LONG], extra_body={"truncate": False})
        assert info.value.code == "input_too_long" and "input[0]" in info.value.message
