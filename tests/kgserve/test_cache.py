"""The embedding cache: hits skip the model, keys keep models, tasks and sizes apart, a swap
drops it, the byte bound holds (real MiniLM)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from kgserve.serve.cache import EmbeddingCache
from tests.support.kgs import MINILM_BODY

TEXTS = ["The quick brown fox", "PostgreSQL LISTEN/NOTIFY", "Embeddings map text to vectors."]
LONG = "word " * 400


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def post(client, **body):
    resp = client.post("/v1/embeddings", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp


@pytest.mark.parametrize("batching", [True, False])
def test_a_repeat_is_answered_from_the_cache_without_a_model_call(make, admin, batching):
    client = make(BATCHING=batching).test_client()
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    first = post(client, input=TEXTS[:2])
    assert first.headers["x-cache-hits"] == "0"
    calls, hits = sample("kgserve_inference_seconds_count"), sample("kgserve_cache_hits_total")
    again = post(client, input=TEXTS[:2])
    assert again.headers["x-cache-hits"] == "2"
    assert sample("kgserve_inference_seconds_count") == calls  # no model call at all
    assert sample("kgserve_cache_hits_total") == hits + 2
    assert again.get_json()["data"] == first.get_json()["data"]
    assert again.get_json()["usage"] == first.get_json()["usage"]
    mixed = post(client, input=[TEXTS[2], TEXTS[0], TEXTS[2]])  # one hit, one text computed once
    assert mixed.headers["x-cache-hits"] == "1"
    data = mixed.get_json()["data"]
    assert data[1]["embedding"] == first.get_json()["data"][0]["embedding"]
    assert data[0]["embedding"] == data[2]["embedding"]
    assert [d["index"] for d in data] == [0, 1, 2]


def test_task_size_and_truncation_are_part_of_the_answer(client, minilm):
    post(client, input=[TEXTS[0], LONG])
    assert post(client, input=TEXTS[0], dimensions=64).headers["x-cache-hits"] == "0"
    assert post(client, input=TEXTS[0], input_type="query").headers["x-cache-hits"] == "0"
    cut = post(client, input=[LONG])
    assert cut.headers["x-cache-hits"] == "1" and cut.headers["x-truncated-inputs"] == "1"
    assert cut.get_json()["usage"]["prompt_tokens"] == 256
    calls = sample("kgserve_inference_seconds_count")
    refused = client.post("/v1/embeddings", json={"input": [TEXTS[0], LONG], "truncate": False})
    assert refused.status_code == 400 and "input[1] has 402 tokens" in \
        refused.get_json()["error"]["message"]
    assert sample("kgserve_inference_seconds_count") == calls


def test_a_miss_that_is_too_long_names_its_place_in_the_request(client, minilm):
    post(client, input=[TEXTS[0]])
    refused = client.post("/v1/embeddings", json={"input": [TEXTS[0], TEXTS[1], LONG],
                                                  "truncate": False})
    assert refused.status_code == 400
    assert "input[2]" in refused.get_json()["error"]["message"]


def test_a_config_switch_never_serves_the_previous_vectors(client, admin, minilm):
    post(client, input=TEXTS[0])
    assert post(client, input=TEXTS[0]).headers["x-cache-hits"] == "1"
    short = {**MINILM_BODY, "embedding_dimensions": 256}
    assert client.post("/admin/embedding/config", json=short, headers=admin).status_code == 200
    after = post(client, input=TEXTS[0])
    assert after.headers["x-cache-hits"] == "0"
    assert len(after.get_json()["data"][0]["embedding"]) == 256
    # Back to the same model and size under a new config: still nothing from before the switch.
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    assert post(client, input=TEXTS[0]).headers["x-cache-hits"] == "0"
    assert post(client, input=TEXTS[0]).headers["x-cache-hits"] == "1"


def test_kg_cache_mb_zero_turns_it_off(make, admin):
    client = make(CACHE_MB=0).test_client()
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    post(client, input=TEXTS)
    assert post(client, input=TEXTS).headers["x-cache-hits"] == "0"


def test_the_byte_bound_holds_and_the_least_recently_used_goes_first():
    vector = np.zeros(384, dtype=np.float32)
    cache = EmbeddingCache(max_bytes=10_000)
    evictions = sample("kgserve_cache_evictions_total")
    for i in range(20):
        cache.put(("k", f"text {i}"), vector, 3)
        cache.get([("k", "text 0")])  # keep using the first one
        assert cache.bytes <= 10_000
    assert len(cache) < 20
    kept = cache.get([("k", "text 0"), ("k", "text 1"), ("k", "text 19")])
    assert kept[0] is not None and kept[1] is None and kept[2] is not None
    assert sample("kgserve_cache_evictions_total") - evictions == 20 - len(cache)
    assert sample("kgserve_cache_bytes") == cache.bytes
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_the_counters_are_on_metrics(client, minilm):
    post(client, input=TEXTS[0])
    post(client, input=TEXTS[0])
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("kgserve_cache_hits_total", "kgserve_cache_misses_total",
                 "kgserve_cache_evictions_total", "kgserve_cache_bytes"):
        assert name in text
