"""The OpenAI provider through the real openai SDK against the loopback stub."""

from __future__ import annotations

import logging
import socket

import numpy as np
import openai
import pytest

from kgserve.errors import http_status
from kgserve.providers import (
    InvalidInput,
    ProviderConfig,
    ProviderError,
    UpstreamError,
    build_provider,
)
from kgserve.providers.openai import OpenAIProvider
from tests.support.openai_stub import API_KEY, MAX_INPUTS, count_tokens, stub_vector

SMALL = "text-embedding-3-small"
TEXTS = ["The quick brown fox.", "Vectors, stored in PostgreSQL!", "a"]


def remote(model: str = SMALL, dims: int = 1536, **kw) -> ProviderConfig:
    """An openai provider config."""
    return ProviderConfig(provider="openai", model_name=model, embedding_dimensions=dims, **kw)


@pytest.fixture
def stub(openai_stub, monkeypatch):
    """The session's stub, reset, with the SDK's environment pointing at it."""
    openai_stub.reset()
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_stub.base_url)
    yield openai_stub
    openai_stub.reset()
    openai_stub.api_key = API_KEY


def loaded(cfg: ProviderConfig, **kw) -> OpenAIProvider:
    """Build and load an OpenAI provider (kw: timeout, max_retries)."""
    provider = OpenAIProvider(cfg, **kw) if kw else build_provider(cfg)
    provider.load()
    return provider


def test_stub_speaks_the_api_to_the_real_sdk(stub):
    client = openai.OpenAI()
    as_floats = client.embeddings.create(model=SMALL, input=TEXTS, encoding_format="float")
    by_default = client.embeddings.create(model=SMALL, input=TEXTS, dimensions=8)
    assert [d.index for d in as_floats.data] == [0, 1, 2]
    assert np.allclose(as_floats.data[1].embedding, stub_vector(SMALL, TEXTS[1]), atol=1e-6)
    assert np.allclose(by_default.data[2].embedding, stub_vector(SMALL, TEXTS[2], 8), atol=1e-6)
    assert stub.embedding_requests()[1]["encoding_format"] == "base64"  # the SDK's default
    assert as_floats.usage.prompt_tokens == sum(count_tokens(t) for t in TEXTS)
    assert {m.id for m in client.models.list()} >= {SMALL, "text-embedding-3-large"}


def test_vectors_usage_and_order(stub):
    provider = loaded(remote())
    out = provider.embed(TEXTS)
    assert out.vectors.shape == (3, 1536) and out.vectors.dtype == np.float32
    for i, text in enumerate(TEXTS):
        assert np.allclose(out.vectors[i], stub_vector(SMALL, text), atol=1e-6)
    assert out.prompt_tokens == sum(count_tokens(t) for t in TEXTS)
    body = stub.embedding_requests()[-1]
    assert body["model"] == SMALL and body["input"] == TEXTS
    assert body["encoding_format"] == "base64" and body["dimensions"] == 1536
    assert provider.device == "remote" and provider.load_seconds is not None
    provider.close()


def test_dimensions_are_passed_upstream(stub):
    provider = loaded(remote(dims=512))
    out = provider.embed(TEXTS[:1])
    assert out.vectors.shape == (1, 512) and stub.embedding_requests()[-1]["dimensions"] == 512
    small = provider.embed(TEXTS[:1], dimensions=64)
    assert stub.embedding_requests()[-1]["dimensions"] == 64
    assert np.allclose(small.vectors[0], stub_vector(SMALL, TEXTS[0], 64), atol=1e-6)
    for bad in (0, 513):
        with pytest.raises(InvalidInput) as err:
            provider.embed(TEXTS, dimensions=bad)
        assert http_status(err.value) == 400


def test_ada_is_shortened_locally(stub):
    provider = loaded(remote("text-embedding-ada-002"))
    out = provider.embed(TEXTS[:1], dimensions=64)
    assert "dimensions" not in stub.embedding_requests()[-1]
    head = stub_vector("text-embedding-ada-002", TEXTS[0])[:64]
    assert np.allclose(out.vectors[0], head / np.linalg.norm(head), atol=1e-6)


def test_inputs_are_chunked_at_the_api_limit(stub):
    provider = loaded(remote(dims=8))
    texts = [f"text number {i}" for i in range(2 * MAX_INPUTS + 404)]
    stub.reset()
    out = provider.embed(texts)
    assert [len(b["input"]) for b in stub.embedding_requests()] == [2048, 2048, 404]
    assert out.vectors.shape == (len(texts), 8)
    for i in (0, 2047, 2048, 4095, 4096, len(texts) - 1):
        assert np.allclose(out.vectors[i], stub_vector(SMALL, texts[i], 8), atol=1e-6)
    assert out.prompt_tokens == 3 * len(texts)


def test_rate_limit_is_retried_then_succeeds(stub):
    provider = loaded(remote(), max_retries=3)
    stub.reset()
    stub.fail_next(2, status=429)
    out = provider.embed(TEXTS)
    assert out.vectors.shape == (3, 1536)
    assert len(stub.embedding_requests()) == 3


def test_server_errors_exhausted_are_an_upstream_error(stub):
    provider = loaded(remote(), max_retries=2)
    stub.reset()
    stub.fail_next(5, status=500)
    with pytest.raises(UpstreamError) as err:
        provider.embed(TEXTS)
    assert http_status(err.value) == 502 and "500" in str(err.value)
    assert len(stub.embedding_requests()) == 3  # one call and two retries


def test_missing_key_is_refused_without_a_call(stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ProviderError) as err:
        build_provider(remote()).load()
    assert http_status(err.value) == 422 and "OPENAI_API_KEY" in str(err.value)
    assert stub.requests == []


def test_bad_key_is_refused_and_never_shown(stub, monkeypatch, caplog):
    bad = "sk-wrong-key-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", bad)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as err:
        build_provider(remote()).load()
    message = str(err.value)
    assert http_status(err.value) == 422 and "401" in message and "Incorrect API key" in message
    assert bad not in message and "sk-wron" not in message
    assert bad not in caplog.text and API_KEY not in caplog.text


def test_key_revoked_at_run_time_is_an_upstream_error(stub, caplog):
    provider = loaded(remote())
    stub.api_key = "sk-rotated-elsewhere"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as err:
        provider.embed(TEXTS)
    assert http_status(err.value) == 502 and "401" in str(err.value)
    assert API_KEY not in str(err.value) and API_KEY[:7] not in str(err.value)
    assert API_KEY not in caplog.text


def test_unknown_model_is_refused_with_the_upstream_reason(stub):
    with pytest.raises(ProviderError) as err:
        build_provider(remote("text-embedding-9-huge", 1024)).load()
    assert http_status(err.value) == 422 and "does not exist" in str(err.value)


def test_too_large_dimensions_are_refused_before_any_call(stub):
    with pytest.raises(ProviderError) as err:
        build_provider(remote(dims=2000)).load()
    assert http_status(err.value) == 422 and "1536" in str(err.value)
    assert stub.requests == []


def test_unreachable_endpoint_is_refused(stub, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderError) as err:
        OpenAIProvider(remote(), max_retries=0, timeout=5).load()
    assert http_status(err.value) == 422 and "could not reach" in str(err.value)


def test_bad_inputs_are_client_errors(stub):
    provider = loaded(remote())
    with pytest.raises(InvalidInput):
        provider.embed(["fine", ""])
    with pytest.raises(InvalidInput):
        provider.embed(TEXTS, input_type="summary")
    with pytest.raises(InvalidInput) as err:
        provider.embed(["word " * 9000])  # over the model's context: the API's 400 passes on
    assert http_status(err.value) == 400 and "context length" in str(err.value)
    assert provider.embed([]).vectors.shape == (0, 1536)


def test_input_type_is_ignored_and_float16_applies(stub):
    provider = loaded(remote(precision="float16"))
    query = provider.embed(TEXTS, input_type="query").vectors
    assert query.dtype == np.float16
    assert np.array_equal(query, provider.embed(TEXTS).vectors)


def test_timeout_and_retries_come_from_the_environment(stub, monkeypatch):
    monkeypatch.setenv("KG_OPENAI_TIMEOUT", "7.5")
    monkeypatch.setenv("KG_OPENAI_MAX_RETRIES", "1")
    provider = build_provider(remote())
    assert (provider.timeout, provider.max_retries) == (7.5, 1)
    monkeypatch.setenv("KG_OPENAI_TIMEOUT", "soon")
    with pytest.raises(ProviderError, match="KG_OPENAI_TIMEOUT"):
        build_provider(remote())
