"""The provider the manager serves: a batching queue for local models, timings for every kind."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from . import metrics
from .batching import BatchedEmbeddings, BatchingQueue, BatchSettings
from .providers.base import EmbeddingProvider, ProviderConfig
from .providers.guard import AccuracyRefused


def batch_settings(cfg: ProviderConfig, app_config: Mapping[str, Any]) -> BatchSettings:
    """Batch limits for `cfg`: its batch_size, and the BATCH_* settings of the app."""
    defaults = BatchSettings()
    wait_ms = app_config.get("BATCH_MAX_WAIT_MS")
    return BatchSettings(
        max_batch=cfg.batch_size,
        max_tokens=int(app_config.get("BATCH_MAX_TOKENS") or defaults.max_tokens),
        max_wait=defaults.max_wait if wait_ms is None else float(wait_ms) / 1000.0,
        max_queue=int(app_config.get("BATCH_MAX_QUEUE") or defaults.max_queue),
        call_size=int(app_config.get("BATCH_CALL_SIZE") or defaults.call_size))


class ServedProvider(EmbeddingProvider):
    """Wraps a provider: embed() goes through a BatchingQueue (local) and reports its timings."""

    def __init__(self, inner: EmbeddingProvider, settings: BatchSettings | None = None,
                 batching: bool = True) -> None:
        # No super().__init__: config, device and load_seconds are the inner provider's.
        self.inner = inner
        self.settings = settings
        self.batching = batching
        self.queue: BatchingQueue | None = None

    config = property(lambda self: self.inner.config)
    device = property(lambda self: self.inner.device)
    load_seconds = property(lambda self: self.inner.load_seconds)
    model = property(lambda self: self.inner.model)
    dimensions = property(lambda self: self.inner.dimensions)

    def __getattr__(self, name: str) -> Any:
        # Anything else (prompts, max_seq_length, native_dimensions...) is the inner provider's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def load(self) -> None:
        """Load the inner provider, then start queueing in front of it."""
        started = time.perf_counter()
        cfg = self.inner.config
        try:
            self.inner.load()
        except AccuracyRefused:
            metrics.GUARD_REFUSALS.labels(cfg.model_name, cfg.backend, cfg.precision).inc()
            raise
        metrics.observe_load(cfg.provider, cfg.model_name,
                             self.inner.load_seconds or time.perf_counter() - started)
        metrics.observe_accuracy(cfg.model_name, cfg.backend, cfg.precision,
                                 getattr(self.inner, "guard", None))
        if self.batching:
            settings = self.settings or BatchSettings(max_batch=cfg.batch_size)
            if self.inner.device != "cpu":  # accelerators gain from every text in one call
                settings = replace(settings, call_size=settings.max_batch)
            self.queue = BatchingQueue(self.inner, settings)

    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> BatchedEmbeddings:
        """Embed through the queue (local) or straight through (remote), timing the call."""
        if self.queue is not None:
            return self.queue.embed(texts, input_type, dimensions)
        started = time.perf_counter()
        out = self.inner.embed(texts, input_type, dimensions)
        elapsed = time.perf_counter() - started
        metrics.INFERENCE.observe(elapsed)
        return BatchedEmbeddings(out.vectors, out.prompt_tokens, 0.0, elapsed)

    def count_tokens(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Count tokens with the inner provider."""
        return self.inner.count_tokens(texts, input_type)

    def check_request(self, input_type: str | None, dimensions: int | None) -> None:
        """Validate with the inner provider."""
        self.inner.check_request(input_type, dimensions)

    def close(self) -> None:
        """Drain and stop the queue, then release the inner provider."""
        if self.queue is not None:
            self.queue.close()
        self.inner.close()


def serving_builder(app_config: Mapping[str, Any],
                    build: Callable[[ProviderConfig], EmbeddingProvider] | None = None
                    ) -> Callable[[ProviderConfig], EmbeddingProvider]:
    """Return a manager builder that wraps each provider; local ones get a batching queue."""
    if build is None:
        from .providers import build_provider as build

    def builder(cfg: ProviderConfig) -> EmbeddingProvider:
        batching = cfg.provider == "local" and bool(app_config.get("BATCHING", True))
        return ServedProvider(build(cfg), batch_settings(cfg, app_config), batching)

    return builder
