"""EmbeddingModelManager with real providers: single-flight load, swap after borrowers, states."""

from __future__ import annotations

import threading

import pytest

from kgserve.providers import ProviderConfig, build_provider
from kgserve.providers.base import ModelUnavailable
from kgserve.serve.manager import EmbeddingModelManager, NotReady
from tests.support.kgs import MINILM
from tests.support.waiting import join, start_threads

CFG = ProviderConfig(provider="local", model_name=MINILM, embedding_dimensions=384, device="cpu",
                     id=2)


class Counting:
    """The real build_provider, counting how often it is asked."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, cfg):
        with self.lock:
            self.calls += 1
        return build_provider(cfg)


def test_concurrent_first_requests_load_once():
    builder = Counting()
    mgr = EmbeddingModelManager(builder)
    assert mgr.status()["state"] == "not_loaded"
    barrier = threading.Barrier(4)
    models = []

    def request():
        barrier.wait()
        with mgr.borrow(lambda: CFG) as (provider, _):
            models.append(provider)

    results, threads = start_threads([request] * 4)
    join(threads)
    assert results == [None] * 4
    assert builder.calls == 1 and len(models) == 4 and len({id(m) for m in models}) == 1
    status = mgr.status()
    assert status["state"] == "ready" and status["config_id"] == 2 and status["device"] == "cpu"
    mgr.reset()
    assert mgr.status()["state"] == "not_loaded"


def test_swap_releases_the_old_provider_after_its_borrowers():
    mgr = EmbeddingModelManager()
    mgr.load(CFG)
    with mgr.borrow() as (old, _):
        new = mgr.prepare(CFG)
        assert mgr.swap(new, 3) is True
        assert mgr.current() is new
        assert old.embed(["still usable"]).vectors.shape == (1, 384)  # not closed under us
        assert old._st is not None
    assert old._st is None  # closed once the last borrower returned it
    assert mgr.config_id == 3
    mgr.reset()


def test_a_stale_swap_is_refused():
    mgr = EmbeddingModelManager()
    mgr.load(ProviderConfig(**{**CFG.__dict__, "id": 5}))
    late = mgr.prepare(CFG)
    assert mgr.swap(late, 4) is False
    assert mgr.config_id == 5 and late._st is None
    mgr.reset()


def test_a_failed_first_load_is_reported_and_not_retried_at_once():
    builder = Counting()
    mgr = EmbeddingModelManager(builder, retry_seconds=3600)
    bad = ProviderConfig(provider="local", model_name="nobody/nothing", embedding_dimensions=8,
                         id=1)
    with pytest.raises(NotReady, match="nobody/nothing"), mgr.borrow(lambda: bad):
        pass
    status = mgr.status()
    assert status["state"] == "failed" and "nobody/nothing" in status["last_error"]
    with pytest.raises(NotReady), mgr.borrow(lambda: bad):
        pass
    assert builder.calls == 1
    with pytest.raises(ModelUnavailable):
        mgr.prepare(bad)  # an explicit prepare always tries
