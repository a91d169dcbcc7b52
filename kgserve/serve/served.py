"""What the manager serves: a provider, behind a cache and a batching queue when it is capable of
them; the one place a request is checked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .. import encodings, metrics
from ..providers import build_provider
from ..providers.base import EmbeddingProvider, ProviderConfig, TokenCounts
from ..providers.export.guard import AccuracyRefused
from ..providers.export.probes import calibration_texts
from .batching import BatchedEmbeddings, BatchingQueue, BatchSettings
from .cache import EmbeddingCache, Held, lookup
from .deadlines import Waiting, wait
from .tokens import count_tokens


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
    set, else straight to the provider; either way each answer says where its time went."""

    def __init__(self, provider: EmbeddingProvider, batch: BatchSettings | None,
                 cache_bytes: int = 0) -> None:
        self.provider = provider
        self.batch = batch
        self.cache = EmbeddingCache(cache_bytes) if cache_bytes > 0 else None
        self.queue: BatchingQueue | None = None  # made by load()
        self._ranges: dict[int, np.ndarray] = {}  # int8/uint8 calibration ranges by size
        self._ranges_lock = threading.Lock()

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

    @property
    def max_tokens(self) -> int | None:
        """The most tokens of one input the model reads."""
        return self.provider.max_tokens

    def tokenize(self, texts: list[str], input_type: str | None = None) -> list[list[int]]:
        """Token ids of each text, untruncated (TokenizerUnavailable where it cannot)."""
        self.provider.check_request(texts, input_type, None)
        return self.provider.tokenize(texts, input_type)

    def ranges(self, dimensions: int | None) -> np.ndarray:
        """int8/uint8 ranges at `dimensions`: per dimension (min, max) of the shipped calibration
        set as this model embeds it (plain input, one call; computed once per size)."""
        size = dimensions or self.provider.dimensions
        with self._ranges_lock:
            if size not in self._ranges:
                calibration = self.provider.embed(list(calibration_texts()), None,
                                                  dimensions).vectors
                self._ranges[size] = encodings.ranges_of(calibration)
            return self._ranges[size]

    def load(self) -> None:
        """Load the provider, record how long it took, then start queueing in front of it."""
        started = time.perf_counter()
        cfg = self.provider.config
        try:
            self.provider.load()
        except AccuracyRefused:
            metrics.count_guard_refusal(cfg.model_name, cfg.backend, cfg.precision)
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
              dimensions: int | None = None, truncate: bool = True,
              waiting: Waiting | None = None) -> BatchedEmbeddings:
        """Embed `texts`: from the cache where it can, the rest through the queue (batched
        providers) or straight through, timing the call.

        Each request is checked here, once: its texts, `input_type` and `dimensions`, and with
        `truncate` false, that no input is longer than the model reads (InputTooLong naming its
        place, before anything is computed)."""
        self.provider.check_request(texts, input_type, dimensions)
        if self.cache is None or not texts:
            tokens = self._admit(texts, input_type, truncate)
            return self._compute(texts, input_type, dimensions, tokens, waiting)
        cfg = self.provider.config
        prefix = (cfg.id, cfg.model_name, input_type, self.provider.max_tokens,
                  dimensions or self.provider.dimensions)
        held = lookup(self.cache, prefix, texts)
        missing = held.missing
        tokens = self._admit(missing, input_type, truncate, held)
        computed = self._compute(missing, input_type, dimensions, tokens, waiting) \
            if missing else None
        return held.answer(self.cache, computed, self.provider.max_tokens)

    def _admit(self, texts: list[str], input_type: str | None, truncate: bool,
               held: Held | None = None) -> TokenCounts | None:
        """Refuse the request when `truncate` is false and an input (of `texts`, or one `held`
        in the cache) is longer than the model reads; return the counts of `texts` this made
        (None when nothing was counted). A provider that does not count tokens itself leaves
        the refusal to its remote API."""
        if truncate or not self.provider.capabilities.counts_tokens:
            return None
        limit = self.provider.max_tokens
        tokens = count_tokens(self.provider, texts, input_type) if texts \
            else TokenCounts((), limit)
        raw = held.raw_tokens(dict(zip(texts, tokens.raw))) if held else tokens.raw
        TokenCounts.of(raw, limit).refuse_truncation()
        return tokens

    def _compute(self, texts: list[str], input_type: str | None, dimensions: int | None,
                 tokens: TokenCounts | None, waiting: Waiting | None) -> BatchedEmbeddings:
        """Embed through the queue (waiting at most until the deadline, and only while the
        client is there) or straight through, timing the call."""
        if self.queue is not None:
            future = self.queue.submit(texts, input_type, dimensions, tokens)
            if waiting is None:
                return future.result()
            return wait(future, waiting, self.queue.retry_after)
        started = time.perf_counter()
        out = self.provider.embed(texts, input_type, dimensions)
        elapsed = time.perf_counter() - started
        metrics.INFERENCE.observe(elapsed)
        return BatchedEmbeddings(out.vectors, out.prompt_tokens, out.truncated, out.tokens,
                                 inference_seconds=elapsed)

    def close(self) -> None:
        """Drain and stop the queue, drop the cache, then release the provider."""
        if self.queue is not None:
            self.queue.close()
        if self.cache is not None:
            self.cache.clear()
        self.provider.close()


def serving_builder(app_config: Mapping[str, Any]) -> Callable[[ProviderConfig], ServedProvider]:
    """Return the manager's builder: each provider served with what it is capable of (a batching
    queue, an embedding cache) and the app settings allow."""
    def builder(cfg: ProviderConfig) -> ServedProvider:
        provider = build_provider(cfg)
        can = provider.capabilities
        batching = can.batched and bool(app_config.get("BATCHING", True))
        cache_mb = float(app_config.get("CACHE_MB") or 0) if can.cacheable else 0
        return ServedProvider(provider, batch_settings(cfg, app_config) if batching else None,
                              int(cache_mb * 2**20))

    return builder
