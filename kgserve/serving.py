"""What the manager serves: a provider, behind a batching queue when it is local, timed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from . import metrics
from .batching import BatchedEmbeddings, BatchingQueue, BatchSettings
from .providers import build_provider
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


class ServedProvider:
    """A provider as the manager serves it: requests go through a BatchingQueue when `batch` is
    set (local models), else straight to the provider; either way each answer says where its
    time went."""

    def __init__(self, provider: EmbeddingProvider, batch: BatchSettings | None) -> None:
        self.provider = provider
        self.batch = batch
        self.queue: BatchingQueue | None = None  # made by load()

    @property
    def config(self) -> ProviderConfig:
        """The config the provider was built from."""
        return self.provider.config

    @property
    def model(self) -> str:
        """The model name reported in responses."""
        return self.provider.model

    @property
    def dimensions(self) -> int:
        """The size of the vectors served by default."""
        return self.provider.dimensions

    @property
    def device(self) -> str:
        """Where the model runs ('cpu', 'cuda', ... or 'remote')."""
        return self.provider.device

    @property
    def load_seconds(self) -> float | None:
        """How long the provider took to load."""
        return self.provider.load_seconds

    @property
    def guard(self):
        """The accuracy guard's result of an onnx/openvino provider (None for the others)."""
        return getattr(self.provider, "guard", None)

    def load(self) -> None:
        """Load the provider, record how long it took, then start queueing in front of it."""
        started = time.perf_counter()
        cfg = self.provider.config
        try:
            self.provider.load()
        except AccuracyRefused:
            metrics.GUARD_REFUSALS.labels(cfg.model_name, cfg.backend, cfg.precision).inc()
            raise
        metrics.observe_load(cfg.provider, cfg.model_name,
                             self.provider.load_seconds or time.perf_counter() - started)
        metrics.observe_accuracy(cfg.model_name, cfg.backend, cfg.precision, self.guard)
        if self.batch is not None:
            settings = self.batch
            if self.provider.device != "cpu":  # accelerators gain from every text in one call
                settings = replace(settings, call_size=settings.max_batch)
            self.queue = BatchingQueue(self.provider, settings)

    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> BatchedEmbeddings:
        """Embed through the queue (local) or straight through (remote), timing the call."""
        if self.queue is not None:
            return self.queue.embed(texts, input_type, dimensions)
        started = time.perf_counter()
        out = self.provider.embed(texts, input_type, dimensions)
        elapsed = time.perf_counter() - started
        metrics.INFERENCE.observe(elapsed)
        return BatchedEmbeddings(out.vectors, out.prompt_tokens, 0.0, elapsed)

    def close(self) -> None:
        """Drain and stop the queue, then release the provider."""
        if self.queue is not None:
            self.queue.close()
        self.provider.close()


def serving_builder(app_config: Mapping[str, Any]) -> Callable[[ProviderConfig], ServedProvider]:
    """Return the manager's builder: each provider served, local ones behind a batching queue."""
    def builder(cfg: ProviderConfig) -> ServedProvider:
        batching = cfg.provider == "local" and bool(app_config.get("BATCHING", True))
        return ServedProvider(build_provider(cfg),
                              batch_settings(cfg, app_config) if batching else None)

    return builder
