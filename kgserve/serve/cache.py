"""The embedding cache: an in-process LRU of vectors, bounded in bytes (KG_CACHE_MB).

A key carries everything that decides a vector: the config id and model (a swap can never serve
the previous model's vector; the served provider's cache is also dropped with it), the task
(input_type, hence its prefix), the truncation limit, `dimensions` and the text. An entry keeps
the text's untruncated token count, so that a hit reports the same usage as a computed vector
and `truncate: false` refuses a hit as it would refuse the text (ServedProvider checks).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..providers.base import TokenCounts
from .batching import BatchedEmbeddings

_OVERHEAD = 200  # bytes per entry besides the vector and the text: key tuple, dict slot, array


class EmbeddingCache:
    """A thread-safe LRU of (vector, untruncated token count) by key, at most `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[np.ndarray, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes held now (vectors, texts and bookkeeping)."""
        return self._bytes

    def get(self, keys: list[Hashable]) -> list[tuple[np.ndarray, int] | None]:
        """The entry of each key (None: a miss), marking hits as recently used."""
        with self._lock:
            found = []
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                found.append(entry)
        hits = sum(e is not None for e in found)
        metrics.CACHE_HITS.inc(hits)
        metrics.CACHE_MISSES.inc(len(found) - hits)
        return found

    def put(self, key: Hashable, vector: np.ndarray, tokens: int) -> None:
        """Keep `vector` (copied) under `key`, evicting the least recently used beyond the bound."""
        size = _size(key, vector)
        if size > self.max_bytes:
            return
        evicted = 0
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _size(key, old[0])
            self._entries[key] = (np.array(vector, copy=True), tokens)
            self._bytes += size
            while self._bytes > self.max_bytes:
                k, (v, _) = self._entries.popitem(last=False)
                self._bytes -= _size(k, v)
                evicted += 1
            delta = self._bytes
        metrics.CACHE_EVICTIONS.inc(evicted)
        metrics.CACHE_BYTES.set(delta)

    def clear(self) -> None:
        """Drop every entry (the model behind the keys is going away)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
        metrics.CACHE_BYTES.set(0)


def _size(key: Hashable, vector: np.ndarray) -> int:
    text = key[-1] if isinstance(key, tuple) else key
    return vector.nbytes + sys.getsizeof(text) + _OVERHEAD


@dataclass
class Held:
    """What the cache holds of one request's texts under `prefix`."""

    prefix: tuple
    texts: list[str]
    found: list[tuple[np.ndarray, int] | None]  # (vector, untruncated tokens); None: a miss

    @property
    def missing(self) -> list[str]:
        """The texts to compute: each distinct miss once, in order."""
        return list(dict.fromkeys(t for t, e in zip(self.texts, self.found) if e is None))

    def raw_tokens(self, fresh: dict[str, int]) -> list[int]:
        """Each text's untruncated token count: the held one, else `fresh`'s."""
        return [e[1] if e is not None else fresh[t] for t, e in zip(self.texts, self.found)]

    def answer(self, cache: EmbeddingCache, computed: BatchedEmbeddings | None,
               limit: int | None) -> BatchedEmbeddings:
        """Keep what was computed for the misses, and answer the request: usage counts every
        input as if it had been computed."""
        missing = self.missing
        fresh: dict[str, tuple[np.ndarray, int]] = {}
        if computed is not None:
            raw = computed.tokens.raw if computed.tokens is not None else (0,) * len(missing)
            fresh = {t: (computed.vectors[i], raw[i]) for i, t in enumerate(missing)}
            if computed.tokens is not None:
                for text, (vector, tokens) in fresh.items():
                    cache.put((*self.prefix, text), vector, tokens)
        rows = [e if e is not None else fresh[t] for t, e in zip(self.texts, self.found)]
        return BatchedEmbeddings.counted(
            np.vstack([v for v, _ in rows]), TokenCounts.of((n for _, n in rows), limit),
            queue_seconds=computed.queue_seconds if computed else 0.0,
            inference_seconds=computed.inference_seconds if computed else 0.0,
            cache_hits=sum(e is not None for e in self.found))


def lookup(cache: EmbeddingCache, prefix: tuple, texts: list[str]) -> Held:
    """What `cache` holds of `texts` under `prefix` (the hits are marked recently used)."""
    return Held(prefix, texts, cache.get([(*prefix, t) for t in texts]))
