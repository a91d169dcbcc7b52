"""The batching queue in front of the real bundled MiniLM: correctness, not speed."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from kgserve.errors import http_status
from kgserve.providers import InvalidInput, ProviderConfig, build_provider
from kgserve.providers.base import TokenCounts
from kgserve.serve.batching import BatchingQueue, BatchSettings, QueueClosed, QueueFull
from kgserve.serve.served import ServedProvider
from tests.support.gate import Gate
from tests.support.kgs import MINILM, cosine
from tests.support.tiny_models import minilm_dir
from tests.support.waiting import join, start_threads, wait_for

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


@pytest.fixture
def queue(inner):
    """queue(**settings): a BatchingQueue in front of the module's MiniLM through a Gate
    (queue.provider); closed after the test."""
    made = []

    def factory(**settings) -> BatchingQueue:
        made.append(BatchingQueue(Gate(inner), BatchSettings(**settings)))
        return made[-1]

    yield factory
    for q in made:
        q.close()


def seen_tokens(provider, texts: list[str]) -> list[int]:
    """The tokens the model reads of each text (cut at its limit)."""
    return TokenCounts.of(provider.token_lengths(texts), provider.max_tokens).seen


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def in_threads(queue, requests: list[list[str]], **kw):
    """Send each request from its own thread; results[i] is its embeddings or exception."""
    return start_threads([lambda texts=texts: queue.embed(texts, **kw) for texts in requests])


def wait_queued(queue, n: int) -> None:
    """Wait (without asserting on time) until `n` texts sit in the queue."""
    wait_for(lambda: queue.queued == n, f"{n} texts in the queue")


def test_concurrent_requests_get_their_own_vectors_in_order(queue, reference):
    q = queue(max_batch=8, max_wait=HOUR)
    requests = [[SHORT[i % 4], LONG[: 20 + 37 * i]] if i % 3 else [SHORT[i % 4]]
                for i in range(12)]
    requests.append([f"text number {k} " + SHORT[k % 4] * (k % 5 + 1) for k in range(19)])
    total = sum(map(len, requests))
    if total % 8:  # fill the last batch too: with an hour-long window it must close by size
        requests.append(["padding text"] * (8 - total % 8))
        total += 8 - total % 8
    batches = sample("kgserve_batch_size_count")
    with q.provider.held(q):
        results, threads = in_threads(q, requests)
        wait_queued(q, total)
    join(threads)
    for texts, got in zip(requests, results):
        assert not isinstance(got, Exception), got
        assert got.vectors.shape == (len(texts), 384)
        assert cosine(got.vectors, reference(texts)).min() >= 0.999
        assert got.prompt_tokens == sum(seen_tokens(q.provider, texts))
    # Gathered across requests: full batches of 8, never one call per request...
    calls = q.provider.calls[1:]  # after the call that held the worker while they queued
    assert sample("kgserve_batch_size_count") - batches == 1 + len(calls)
    assert len(calls) == total // 8
    assert all(len(c) == 8 for c in calls)
    # ...each sorted by length.
    for call in calls:
        lengths = seen_tokens(q.provider, call)
        assert lengths == sorted(lengths)


def test_a_request_arriving_alone_is_not_held_by_the_wait(queue):
    q = queue(max_batch=32, max_wait=HOUR)
    before = REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) or 0.0
    results, threads = in_threads(q, [["one lonely query"]])
    join(threads)  # an hour-long wait would have been applied here if it applied when idle
    got = results[0]
    assert not isinstance(got, Exception), got
    assert got.queue_seconds < HOUR and got.inference_seconds > 0
    assert REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) == before + 1
    # After a busy spell the window applies; it ends early when the batch is full (32 texts)...
    with q.provider.held(q):  # (the holding call is a batch of one too)
        results, threads = in_threads(q, [[f"query {i}"] for i in range(32)])
        wait_queued(q, 32)
    join(threads)
    assert all(not isinstance(r, Exception) for r in results)
    # ...and the next lone request, with the model idle again, runs at once.
    results, threads = in_threads(q, [["another lonely query"]])
    join(threads)
    assert not isinstance(results[0], Exception)
    assert REGISTRY.get_sample_value("kgserve_batch_size_bucket", {"le": "1.0"}) == before + 3


def test_a_large_request_is_split_and_does_not_hold_up_a_small_one(queue, reference):
    q = queue(max_batch=8, max_wait=0.0)
    big = [f"document {k}: " + SHORT[k % 4] for k in range(40)]
    batches = sample("kgserve_batch_size_count")
    with q.provider.held(q):
        results, threads = in_threads(q, [big])
        wait_queued(q, 40)
        small, small_threads = in_threads(q, [["urgent query"]])
        wait_queued(q, 41)
    join(small_threads + threads)
    # Round-robin over requests: the small one rode in the first call, not after all 40.
    calls = q.provider.calls[1:]  # after the holding call
    assert "urgent query" in calls[0] and max(map(len, calls)) == 8
    assert cosine(results[0].vectors, reference(big)).min() >= 0.999
    assert cosine(small[0].vectors, reference(["urgent query"])).min() >= 0.999
    # 41 texts in batches of <= 8, after the holding one
    assert sample("kgserve_batch_size_count") - batches == 1 + 6


def test_token_budget_counts_padding(queue, reference):
    q = queue(max_batch=32, max_tokens=300, max_wait=0.0)
    texts = [LONG] * 6 + SHORT  # LONG is 146 tokens: two fit in 300, three do not
    count = sample("kgserve_batch_padded_tokens_count")
    got = q.embed(texts)
    assert cosine(got.vectors, reference(texts)).min() >= 0.999
    calls = q.provider.calls
    assert [len(c) for c in calls] == [4, 2, 2, 2]  # shortest first, then LONG in pairs
    for call in calls:
        assert max(seen_tokens(q.provider, call)) * len(call) <= 300
    assert sample("kgserve_batch_padded_tokens_count") - count == len(calls)


def test_a_full_queue_refuses_with_retry_after(queue):
    q = queue(max_batch=8, max_queue=3, max_wait=0.0)
    rejected = sample("kgserve_batch_queue_rejected_total")
    with q.provider.held(q):
        results, threads = in_threads(q, [["a", "b"], ["c"]])
        wait_queued(q, 3)
        with pytest.raises(QueueFull) as info:
            q.embed(["one too many"])
        assert http_status(info.value) == 429 and info.value.retry_after >= 1
    join(threads)
    assert [r.vectors.shape[0] for r in results] == [2, 1]  # the queued ones were served
    assert sample("kgserve_batch_queue_rejected_total") == rejected + 1
    assert q.embed(["room again"]).vectors.shape == (1, 384)


def test_bad_input_fails_only_its_own_request(queue, reference):
    q = queue(max_batch=16, max_wait=0.0)
    requests = [["good one"], ["fine", "bad \ud800 text"], ["good two", "good three"], ["ok"]]
    with q.provider.held(q):
        results, threads = in_threads(q, requests)
        wait_queued(q, 6)
    join(threads)
    assert isinstance(results[1], InvalidInput) and http_status(results[1]) == 400
    assert "input[1]" in str(results[1])
    for i in (0, 2, 3):
        assert cosine(results[i].vectors, reference(requests[i])).min() >= 0.999


def test_bad_dimensions_fail_before_queueing(queue):
    q = queue()
    served = ServedProvider(q.provider, None)  # a request enters here and is checked once
    served.queue = q
    with pytest.raises(InvalidInput):
        served.embed(["x"], dimensions=1000)
    assert q.queued == 0


def test_requests_of_different_kinds_are_not_mixed(queue, reference):
    q = queue(max_batch=16, max_wait=0.0)
    with q.provider.held(q):
        a, ta = in_threads(q, [["same text"]])
        b, tb = in_threads(q, [["same text"]], dimensions=64)
        wait_queued(q, 2)
    join(ta + tb)
    assert a[0].vectors.shape == (1, 384) and b[0].vectors.shape == (1, 64)
    assert cosine(b[0].vectors, reference(["same text"])[:, :64]).min() >= 0.999
    calls = q.provider.calls[1:]  # after the holding call
    assert len(calls) == 2  # one model call per kind


def test_close_drains_then_refuses(queue):
    q = queue(max_wait=0.0)
    with q.provider.held(q):
        results, threads = in_threads(q, [["queued before close"]])
        wait_queued(q, 1)
        closing, closer = start_threads([q.close])  # it waits for the queue to drain
    join(closer + threads)
    assert closing == [None]
    assert results[0].vectors.shape == (1, 384)
    with pytest.raises(QueueClosed):
        q.embed(["too late"])


def test_a_request_whose_client_left_gets_no_model_time(queue):
    q = queue(max_batch=8, max_wait=0.0)
    with q.provider.held(q):
        gone, kept = q.submit(["nobody waits for this"]), ["still wanted"]
        assert gone.cancel()
        results, threads = in_threads(q, [kept])
        wait_queued(q, 2)
    join(threads)
    calls = q.provider.calls[1:]  # after the holding call
    assert calls == [kept] and results[0].vectors.shape == (1, 384)
    assert q.queued == 0


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


class Panic(BaseException):
    """What a Rust panic in the tokenizers library raises (pyo3's PanicException): not an
    Exception, so `except Exception` lets it through."""


class Panicking:
    """The queue's Gate, except that the tokenizer (`where="count"`) or the model
    (`where="encode"`) panics on any text holding "PANIC"."""

    def __init__(self, gate, where: str) -> None:
        self.gate, self.where = gate, where

    def __getattr__(self, name):
        return getattr(self.gate, name)

    def _maybe_panic(self, texts, where):
        if where == self.where and any("PANIC" in t for t in texts):
            raise Panic("called `Option::unwrap()` on a `None` value")

    def token_lengths(self, texts, input_type=None):
        self._maybe_panic(texts, "count")
        return self.gate.token_lengths(texts, input_type)

    def tokenized(self, texts, input_type=None):
        self._maybe_panic(texts, "count")
        return self.gate.tokenized(texts, input_type)

    def encode(self, texts, input_type=None, dimensions=None, rows=None):
        self._maybe_panic(texts, "encode")
        return self.gate.encode(texts, input_type, dimensions, rows)


@pytest.mark.parametrize("where", ["count", "encode"])
def test_a_panic_on_one_request_fails_only_that_request(queue, reference, where):
    q = queue(max_batch=16, max_wait=0.0)
    gate = q.provider
    q.provider = Panicking(gate, where)
    requests = [["good one"], ["fine", "PANIC here"], ["good two", "good three"], ["ok"]]
    with gate.held(q):
        results, threads = in_threads(q, requests)
        wait_queued(q, 6)
    join(threads)
    assert isinstance(results[1], Exception), results[1]  # an error a view can answer
    if where == "count":  # the tokenizer refused that text: the client's input, a 400
        assert http_status(results[1]) == 400 and "input[1]" in str(results[1])
    for i in (0, 2, 3):
        assert not isinstance(results[i], BaseException), results[i]
        assert cosine(results[i].vectors, reference(requests[i])).min() >= 0.999
    # The worker lives on: later requests are served by the same thread.
    assert cosine(q.embed(["after the panic"]).vectors,
                  reference(["after the panic"])).min() >= 0.999
