"""The micro-batching queue in front of a local provider: concurrent requests share one model call."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import numpy as np

from . import metrics
from .batchtypes import (
    BatchedEmbeddings,
    BatchSettings,
    Pending,
    QueueClosed,
    QueueFull,
)
from .providers.base import EmbeddingProvider, InvalidInput, ProviderError

__all__ = ["BatchSettings", "BatchedEmbeddings", "BatchingQueue", "QueueClosed", "QueueFull"]

log = logging.getLogger(__name__)


class BatchingQueue:
    """Gathers concurrent embed() calls into model calls run by one worker thread per process."""

    def __init__(self, provider: EmbeddingProvider, settings: BatchSettings | None = None) -> None:
        self.provider = provider
        self.settings = settings or BatchSettings()
        self._closed = False
        self._init_state()
        _QUEUES.add(self)

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[Pending] = deque()
        self._queued = 0  # texts in _pending not yet handed to a batch
        self._busy = False  # the model is running a batch (or the queue is paused)
        self._arrived_busy = False  # something was queued while busy: top-up wait applies
        self._paused = 0
        self._thread: threading.Thread | None = None
        self._rate = 0.0  # texts/s of recent batches, for Retry-After

    # -- client side ----------------------------------------------------------------------
    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> BatchedEmbeddings:
        """Embed `texts` in order, sharing model calls with concurrent requests."""
        self.provider.check_request(input_type, dimensions)
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("input must be a list of strings")
        req = Pending(list(texts), (input_type, dimensions))
        if not texts:
            empty = self.provider.embed([], input_type, dimensions)
            return BatchedEmbeddings(empty.vectors, 0)
        with self._cond:
            if self._closed:
                raise QueueClosed("the model is being replaced; retry")
            if self._queued and self._queued + len(texts) > self.settings.max_queue:
                metrics.QUEUE_REJECTED.inc()
                raise QueueFull(f"{self._queued} texts are waiting for the model in this worker "
                                f"(limit {self.settings.max_queue}); retry later",
                                self._retry_after())
            self._pending.append(req)
            self._queued += len(texts)
            self._arrived_busy = self._arrived_busy or self._busy
            metrics.QUEUE_SIZE.set(self._queued)
            self._ensure_thread()
            self._cond.notify()
        req.done.wait()
        if req.error is not None:
            raise req.error
        total = time.perf_counter() - req.submitted
        return BatchedEmbeddings(req.vectors, sum(req.tokens or ()),
                                 max(total - req.inference, 0.0), req.inference)

    def _retry_after(self) -> int:
        """Seconds until the waiting texts are likely done (at least 1)."""
        rate = self._rate or 50.0
        return max(1, min(60, math.ceil(self._queued / rate)))

    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return self._queued

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold new batches while inside (the running one finishes); requests keep queueing."""
        with self._cond:
            self._paused += 1
            self._busy = True  # requests queued meanwhile count as arriving while busy
        try:
            yield
        finally:
            with self._cond:
                self._paused -= 1
                self._busy = bool(self._paused)
                self._cond.notify_all()

    def close(self) -> None:
        """Finish what is queued, stop the worker thread and refuse new requests."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _ensure_thread(self) -> None:
        # Started lazily, in the process that serves: a thread never survives fork().
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kgserve-batcher",
                                            daemon=True)
            self._thread.start()

    # -- worker side ----------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug here must not leave clients waiting forever
            log.exception("the batching worker stopped")
            with self._cond:
                stranded, self._thread = list(self._pending), None
                self._pending.clear()
                self._queued = 0
            for r in stranded:
                r.fail(exc)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while (not self._pending or self._paused) and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                if self._arrived_busy:
                    self._top_up()
                self._arrived_busy = False
                uncounted = [r for r in self._pending if r.tokens is None]
            if uncounted:
                self._count(uncounted)
            with self._cond:
                batch = self._take()
                metrics.QUEUE_SIZE.set(self._queued)
            try:
                self._run_split(batch)
            except BaseException as exc:
                for r, _ in batch:
                    r.fail(exc)
                raise

    def _top_up(self) -> None:
        """Wait up to max_wait for a fuller batch; called only when the model was just busy."""
        deadline = time.monotonic() + self.settings.max_wait
        while self._queued < self.settings.max_batch and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _count(self, requests: list[Pending]) -> None:
        """Count tokens of new requests (one tokenizer call per kind); bad input fails its owner."""
        groups: dict[tuple, list[Pending]] = {}
        for r in requests:
            groups.setdefault(r.key, []).append(r)
        for (input_type, _), group in groups.items():
            try:
                counts = self.provider.count_tokens([t for r in group for t in r.texts],
                                                    input_type)
            except Exception:  # noqa: BLE001 - someone's input is bad: find whose, one at a time
                counts = None
            if counts is not None:
                at = 0
                for r in group:
                    r.set_tokens(counts[at:at + len(r.texts)])
                    at += len(r.texts)
                continue
            for r in group:
                try:
                    r.set_tokens(self.provider.count_tokens(r.texts, input_type))
                except Exception as exc:  # noqa: BLE001 - the tokenizer's errors vary
                    self._drop(r, _as_input_error(exc, r.texts, self.provider, input_type))

    def _drop(self, req: Pending, exc: BaseException) -> None:
        with self._cond:
            try:
                self._pending.remove(req)
                self._queued -= len(req.texts) - req.next
            except ValueError:
                pass
        req.fail(exc)

    def _take(self) -> list[tuple[Pending, int]]:
        """Choose the next batch: round-robin over requests of the head's kind, within budget."""
        if not self._pending:
            return []
        s = self.settings
        head = next((r for r in self._pending if r.tokens is not None), None)
        if head is None:
            return []
        reqs = [r for r in self._pending if r.key == head.key and r.tokens is not None]
        reqs = reqs[:s.max_batch]
        items: list[tuple[Pending, int]] = []
        longest = 0
        progress = True
        while progress and len(items) < s.max_batch:
            progress = False
            for r in reqs:  # one text from each request per round: big requests cannot hog
                if r.next >= len(r.texts) or len(items) >= s.max_batch:
                    continue
                i = r.order[r.next]
                n = r.tokens[i]
                if items and max(longest, n) * (len(items) + 1) > s.max_tokens:
                    continue
                items.append((r, i))
                r.next += 1
                longest = max(longest, n)
                progress = True
        for r in reqs:
            if r.next >= len(r.texts):
                self._pending.remove(r)
        self._queued -= len(items)
        return items

    def _run_split(self, items: list[tuple[Pending, int]]) -> None:
        """Sort the batch by length and run it in model calls of about call_size texts."""
        items.sort(key=lambda it: it[0].tokens[it[1]])
        calls = max(1, len(items) // max(1, self.settings.call_size))
        bounds = [round(k * len(items) / calls) for k in range(calls + 1)]
        for lo, hi in pairwise(bounds):
            self._run(items[lo:hi])

    def _run(self, items: list[tuple[Pending, int]]) -> None:
        """Embed one batch, sorted by length, and hand each request its own rows."""
        items.sort(key=lambda it: it[0].tokens[it[1]])
        input_type, dimensions = items[0][0].key
        start = time.perf_counter()
        owners = {id(r): r for r, _ in items}.values()
        for r in owners:
            if r.started is None:
                r.started = start
                metrics.QUEUE_WAIT.observe(start - r.submitted)
        with self._cond:
            self._busy = True
        try:
            out = self.provider.embed([r.texts[i] for r, i in items], input_type, dimensions)
        except Exception as exc:  # noqa: BLE001 - _isolate() decides whom it concerns
            out = exc
        finally:
            with self._cond:  # before any result is handed out: a reply may trigger a request
                self._busy = bool(self._paused)
        if isinstance(out, Exception):
            self._isolate(items, out)
            return
        elapsed = time.perf_counter() - start
        self._observe(items, elapsed)
        for row, (r, i) in enumerate(items):
            self._deliver(r, i, out.vectors[row], elapsed)

    def _isolate(self, items: list[tuple[Pending, int]], exc: Exception) -> None:
        """After a failed batch, retry each request alone so one bad input fails only its owner."""
        owners: dict[int, list[tuple[Pending, int]]] = {}
        for it in items:
            owners.setdefault(id(it[0]), []).append(it)
        if len(owners) == 1:
            if not isinstance(exc, ProviderError):
                log.error("embedding a batch failed", exc_info=exc)
            self._drop(items[0][0], exc)
            return
        for group in owners.values():
            self._run(group)

    def _deliver(self, r: Pending, i: int, vector: np.ndarray, elapsed: float) -> None:
        if r.done.is_set():
            return
        if r.vectors is None:
            r.vectors = np.empty((len(r.texts), vector.shape[0]), dtype=vector.dtype)
        r.vectors[i] = vector
        r.left -= 1
        if r.left == 0:
            r.done.set()

    def _observe(self, items: list[tuple[Pending, int]], elapsed: float) -> None:
        lengths = [r.tokens[i] for r, i in items]
        metrics.BATCH_SIZE.observe(len(items))
        metrics.BATCH_TOKENS.observe(max(lengths) * len(items))
        metrics.INFERENCE.observe(elapsed)
        for r in {id(r): r for r, _ in items}.values():
            r.inference += elapsed
        rate = len(items) / elapsed if elapsed > 0 else 0.0
        self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate

    def _reset_after_fork(self) -> None:
        self._init_state()


def _as_input_error(exc: Exception, texts: list[str], provider: EmbeddingProvider,
                    input_type: str | None) -> ProviderError:
    """Turn a tokenizer failure into a 400 naming the first bad input."""
    if isinstance(exc, ProviderError):
        return exc
    for n, text in enumerate(texts):
        try:
            provider.count_tokens([text], input_type)
        except Exception:  # noqa: BLE001 - this is the one that fails
            return InvalidInput(f"input[{n}] cannot be tokenized (invalid text, e.g. a lone "
                                f"surrogate)")
    return InvalidInput("the input cannot be tokenized")


_QUEUES: weakref.WeakSet[BatchingQueue] = weakref.WeakSet()


def _after_fork() -> None:
    # The child has no worker thread and may hold a copy of a locked lock: start afresh.
    for q in list(_QUEUES):
        q._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork)
