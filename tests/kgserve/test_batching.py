"""The batching queue in front of the real bundled MiniLM: correctness, not speed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from kgserve.batching import BatchSettings, QueueClosed, QueueFull
from kgserve.providers import InvalidInput, ProviderConfig, build_provider
from kgserve.serving import ServedProvider
from tests.support.tiny_models import minilm_dir

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HOUR = 3600.0  # a wait window no test could sit through unnoticed
SHORT = ["cats", "a dog", "the quick brown fox", "PostgreSQL stores vectors in a table"]
LONG = " ".join(["embeddings map text to points in a vector space"] * 12)


@pytest.fixture(scope="module")
def inner():
    """The bundled MiniLM provider, loaded once for the module."""
    provider = build_provider(ProviderConfig(provider="local", model_name=MINILM,
                                             embedding_dimensions=384, device="cpu",
                                             batch_size=8))
    provider.load()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers called directly: normalised vectors for a list of texts."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    return lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


class Served:
    """A ServedProvider around the shared MiniLM with its own queue; closed by the fixture."""

    def __init__(self, inner) -> None:
        self.inner, self.open = inner, []

    def __call__(self, **settings) -> ServedProvider:
        served = ServedProvider(inner=_Borrowed(self.inner), settings=BatchSettings(**settings))
        served.load()
        self.open.append(served)
        return served


class _Borrowed:
    """The module's provider lent to one queue (load/close leave it alone); logs each call."""

    def __init__(self, provider) -> None:
        self._p = provider
        self.calls: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self._p, name)

    def embed(self, texts, input_type=None, dimensions=None):
        self.calls.append(list(texts))
        return self._p.embed(texts, input_type, dimensions)

    def load(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def served(inner):
    factory = Served(inner)
    yield factory
    for s in factory.open:
        s.close()


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def in_threads(provider, requests: list[list[str]], **kw) -> tuple[list, list[threading.Thread]]:
    """Start one thread per request; results[i] is the embeddings or the exception raised."""
    results: list = [None] * len(requests)

    def call(i: int) -> None:
        try:
            results[i] = provider.embed(requests[i], **kw)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(requests))]
    for t in threads:
        t.start()
    return results, threads


def wait_queued(provider, n: int) -> None:
    """Wait (without asserting on time) until `n` texts sit in the provider's queue."""
    deadline = time.monotonic() + 60
    while provider.queue.queued != n:
        assert time.monotonic() < deadline, f"queue holds {provider.queue.queued}, not {n}"
        time.sleep(0.005)


def join(threads) -> None:
    for t in threads:
        t.join(120)
        assert not t.is_alive()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_concurrent_requests_get_their_own_vectors_in_order(served, reference):
    provider = served(max_batch=8, max_wait=HOUR)
    requests = [[SHORT[i % 4], LONG[: 20 + 37 * i]] if i % 3 else [SHORT[i % 4]]
                for i in range(12)]
    requests.append([f"text number {k} " + SHORT[k % 4] * (k % 5 + 1) for k in range(19)])
    total = sum(map(len, requests))
    if total % 8:  # fill the last batch too: with an hour-long window it must close by size
        requests.append(["padding text"] * (8 - total % 8))
        total += 8 - total % 8
    batches = sample("kgserve_batch_size_count")
    with provider.queue.paused():
        results, threads = in_threads(provider, requests)
        wait_queued(provider, total)
    join(threads)
    for texts, got in zip(requests, results):
        assert not isinstance(got, Exception), got
        assert got.vectors.shape == (len(texts), 384)
        assert cosine(got.vectors, reference(texts)).min() >= 0.999
        assert got.prompt_tokens == sum(provider.count_tokens(texts))
    # Gathered across requests: full batches of 8, never one call per request...
    calls = provider.inner.calls
    assert sample("kgserve_batch_size_count") - batches == len(calls) == total // 8
    assert all(len(c) == 8 for c in calls)
    # ...each sorted by length.
    for call in calls:
        lengths = provider.count_tokens(call)
        assert lengths == sorted(lengths)


def test_a_request_arriving_alone_is_not_held_by_the_wait(served):
    provider = served(max_batch=32, max_wait=HOUR)
    before = REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) or 0.0
    results, threads = in_threads(provider, [["one lonely query"]])
    join(threads)  # an hour-long wait would have been applied here if it applied when idle
    got = results[0]
    assert not isinstance(got, Exception), got
    assert got.queue_seconds < HOUR and got.inference_seconds > 0
    assert REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) == before + 1
    # After a busy spell the window applies; it ends early when the batch is full (32 texts)...
    with provider.queue.paused():
        results, threads = in_threads(provider, [[f"query {i}"] for i in range(32)])
        wait_queued(provider, 32)
    join(threads)
    assert all(not isinstance(r, Exception) for r in results)
    # ...and the next lone request, with the model idle again, runs at once.
    results, threads = in_threads(provider, [["another lonely query"]])
    join(threads)
    assert not isinstance(results[0], Exception)
    assert REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) == before + 2


def test_a_large_request_is_split_and_does_not_hold_up_a_small_one(served, reference):
    provider = served(max_batch=8, max_wait=0.0)
    big = [f"document {k}: " + SHORT[k % 4] for k in range(40)]
    with provider.queue.paused():
        results, threads = in_threads(provider, [big])
        wait_queued(provider, 40)
        small, small_threads = in_threads(provider, [["urgent query"]])
        wait_queued(provider, 41)
        batches = sample("kgserve_batch_size_count")
    join(small_threads + threads)
    # Round-robin over requests: the small one rode in the first call, not after all 40.
    calls = provider.inner.calls
    assert "urgent query" in calls[0] and max(map(len, calls)) == 8
    assert cosine(results[0].vectors, reference(big)).min() >= 0.999
    assert cosine(small[0].vectors, reference(["urgent query"])).min() >= 0.999
    assert sample("kgserve_batch_size_count") - batches == 6  # 41 texts in batches of <= 8


def test_token_budget_counts_padding(served, reference):
    provider = served(max_batch=32, max_tokens=300, max_wait=0.0)
    texts = [LONG] * 6 + SHORT  # LONG is 146 tokens: two fit in 300, three do not
    count = sample("kgserve_batch_padded_tokens_count")
    got = provider.embed(texts)
    assert cosine(got.vectors, reference(texts)).min() >= 0.999
    calls = provider.inner.calls
    assert [len(c) for c in calls] == [4, 2, 2, 2]  # shortest first, then LONG in pairs
    for call in calls:
        assert max(provider.count_tokens(call)) * len(call) <= 300
    assert sample("kgserve_batch_padded_tokens_count") - count == len(calls)


def test_a_full_queue_refuses_with_retry_after(served):
    provider = served(max_batch=8, max_queue=3, max_wait=0.0)
    rejected = sample("kgserve_batch_queue_rejected_total")
    with provider.queue.paused():
        results, threads = in_threads(provider, [["a", "b"], ["c"]])
        wait_queued(provider, 3)
        with pytest.raises(QueueFull) as info:
            provider.embed(["one too many"])
        assert info.value.status == 429 and info.value.retry_after >= 1
    join(threads)
    assert [r.vectors.shape[0] for r in results] == [2, 1]  # the queued ones were served
    assert sample("kgserve_batch_queue_rejected_total") == rejected + 1
    assert provider.embed(["room again"]).vectors.shape == (1, 384)


def test_bad_input_fails_only_its_own_request(served, reference):
    provider = served(max_batch=16, max_wait=0.0)
    requests = [["good one"], ["fine", "bad \ud800 text"], ["good two", "good three"], ["ok"]]
    with provider.queue.paused():
        results, threads = in_threads(provider, requests)
        wait_queued(provider, 6)
    join(threads)
    assert isinstance(results[1], InvalidInput) and results[1].status == 400
    assert "input[1]" in str(results[1])
    for i in (0, 2, 3):
        assert cosine(results[i].vectors, reference(requests[i])).min() >= 0.999


def test_bad_dimensions_fail_before_queueing(served):
    provider = served()
    with pytest.raises(InvalidInput):
        provider.embed(["x"], dimensions=1000)
    assert provider.queue.queued == 0


def test_requests_of_different_kinds_are_not_mixed(served, reference):
    provider = served(max_batch=16, max_wait=0.0)
    with provider.queue.paused():
        a, ta = in_threads(provider, [["same text"]])
        b, tb = in_threads(provider, [["same text"]], dimensions=64)
        wait_queued(provider, 2)
    join(ta + tb)
    assert a[0].vectors.shape == (1, 384) and b[0].vectors.shape == (1, 64)
    assert cosine(b[0].vectors, reference(["same text"])[:, :64]).min() >= 0.999
    assert len(provider.inner.calls) == 2  # one model call per kind


def test_close_drains_then_refuses(inner):
    provider = ServedProvider(inner=_Borrowed(inner), settings=BatchSettings(max_wait=0.0))
    provider.load()
    with provider.queue.paused():
        results, threads = in_threads(provider, [["queued before close"]])
        wait_queued(provider, 1)
    provider.close()
    join(threads)
    assert results[0].vectors.shape == (1, 384)
    with pytest.raises(QueueClosed):
        provider.embed(["too late"])


def test_openai_calls_stay_within_the_api_token_limit(openai_stub, monkeypatch):
    """One upstream call per request, split only where the API's 300 000-token limit needs it."""
    from tests.support.openai_stub import API_KEY

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_stub.base_url)
    provider = build_provider(ProviderConfig(provider="openai", model_name="text-embedding-3-small",
                                             embedding_dimensions=8))
    provider.load()
    openai_stub.reset()
    try:
        provider.embed(["short"] * 300)
        big = ["word " * 8000] * 8  # 40 000 bytes (8 000 tokens) each: 300 000 allow 7 a call
        out = provider.embed(big)
        sizes = [len(b["input"]) for b in openai_stub.embedding_requests()]
    finally:
        provider.close()
        openai_stub.reset()
    assert sizes == [300, 7, 1] and out.vectors.shape == (8, 8)
