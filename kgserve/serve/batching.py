"""The micro-batching queue in front of a local provider: concurrent requests share model calls.

Client threads hand a Request to the worker through an inbox and wait on its Future. One worker
thread per process owns the requests from then on: it counts their tokens (the one tokenizer
pass: onnx/openvino feed its ids to the model), chooses batches with batchpolicy.py and runs them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..providers.base import EmbeddingProvider, Embeddings, ProviderError, TokenCounts
from .batchpolicy import (
    BatchSettings,
    DrainRate,
    Item,
    Request,
    by_owner,
    last_call,
    learn_rate,
    owners,
    padded_tokens,
    retry_after,
    split_calls,
    take_batch,
)
from .tokens import count_tokens

__all__ = ["BatchSettings", "BatchedEmbeddings", "BatchingQueue", "QueueClosed", "QueueFull"]

log = logging.getLogger(__name__)


class QueueFull(ProviderError):
    """Too many texts are waiting in this worker; the client should retry after `retry_after` s."""

    code = "queue_full"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueClosed(ProviderError):
    """The provider behind the queue was replaced or shut down; a retry reaches the new one."""

    code = "model_not_ready"


@dataclass
class BatchedEmbeddings(Embeddings):
    """Embeddings plus where the request spent its time."""

    queue_seconds: float = 0.0
    inference_seconds: float = 0.0
    cache_hits: int = 0  # inputs answered from the embedding cache


class BatchingQueue:
    """Gathers concurrent embed() calls into model calls run by one worker thread per process."""

    def __init__(self, provider: EmbeddingProvider, settings: BatchSettings | None = None) -> None:
        self.provider = provider
        self.settings = settings or BatchSettings()
        self._closed = False
        self._start_fresh()
        _QUEUES.add(self)

    def _start_fresh(self) -> None:
        # Shared with client threads, under _cond:
        self._cond = threading.Condition(threading.Lock())
        self._inbox: list[Request] = []  # submitted, not yet seen by the worker
        self._queued = 0  # texts submitted and not yet in a batch: the admission limit
        self._thread: threading.Thread | None = None
        self._rate = DrainRate()  # how fast the queue empties, for Retry-After (the worker's)
        # The worker thread's own:
        self._waiting: list[Request] = []  # counted, with texts not in a batch yet; oldest first
        self._busy = (0.0, 0.0)  # when the last batch's model calls started and ended

    # -- client side ----------------------------------------------------------------------
    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None, tokens: TokenCounts | None = None
              ) -> BatchedEmbeddings:
        """Embed `texts` in order, sharing model calls with concurrent requests."""
        return self.submit(texts, input_type, dimensions, tokens).result()

    def submit(self, texts: list[str], input_type: str | None = None,
               dimensions: int | None = None, tokens: TokenCounts | None = None) -> Future:
        """Queue `texts`, checked by the caller (ServedProvider); the Future gives their
        BatchedEmbeddings. `tokens`, when the caller counted them already, spares the worker
        counting them again. A client that stops waiting cancels the Future: the request then
        gets no more model time."""
        request = Request(list(texts), (input_type, dimensions))
        if tokens is not None:
            request.counted(tokens)
        if not texts:
            empty = self.provider.embed([], input_type, dimensions)
            request.future.set_result(BatchedEmbeddings.counted(empty.vectors, TokenCounts()))
            return request.future
        with self._cond:
            if self._closed:
                raise QueueClosed("the model is being replaced; retry")
            if self._queued and self._queued + len(request.texts) > self.settings.max_queue:
                metrics.QUEUE_REJECTED.inc()
                raise QueueFull(f"{self._queued} texts are waiting for the model in this worker "
                                f"(limit {self.settings.max_queue}); retry later",
                                self.retry_after())
            self._inbox.append(request)
            self._queued += len(request.texts)
            metrics.QUEUE_SIZE.set(self._queued)
            if self._thread is None:  # started here, in the process that serves: no fork issue
                self._thread = threading.Thread(target=self._loop, name="kgserve-batcher",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return request.future

    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return self._queued

    def retry_after(self) -> int:
        """Seconds until what is queued now is likely done."""
        return retry_after(self._queued, self._rate.per_second)

    def close(self) -> None:
        """Finish what is queued, stop the worker thread and refuse new requests."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- worker side ----------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug here must not leave clients waiting forever
            log.exception("the batching worker stopped")
            with self._cond:
                stranded = self._inbox + self._waiting
                self._inbox, self._waiting, self._queued, self._thread = [], [], 0, None
            for request in stranded:
                _settle(request, error=exc)

    def _serve(self) -> None:
        while True:
            arrived = self._wait_for_work()
            if arrived is None:
                return
            self._count(arrived)
            self._waiting += arrived
            self._step()

    def _step(self) -> None:
        """Choose and run one batch. Whatever it raises (a bug, a tokenizer's Rust panic, which
        is a BaseException) fails the requests it concerned, never the queue or other clients."""
        s = self.settings
        batch: list[Item] = []
        try:
            self._prune()
            batch = take_batch(self._waiting, s.max_batch, s.max_tokens)
            if not batch:
                return
            self._mark_taken(batch)
            self._run_batch(batch)
        except BaseException as exc:  # the worker thread must outlive any batch
            log.error("a batch failed; its requests get the error, the queue goes on",
                      exc_info=exc)
            failed = owners(batch) if batch else self._waiting
            if not batch:  # choosing failed: nothing of this round can be trusted
                self._forget(sum(len(r.todo) for r in self._waiting))
                self._waiting = []
            for request in failed:
                _settle(request, error=exc)

    def _wait_for_work(self) -> list[Request] | None:
        """Wait for requests; return the new ones (None once closed and drained)."""
        with self._cond:
            while not self._inbox and not self._waiting and not self._closed:
                self._cond.wait()
            if not self._inbox and not self._waiting:
                return None
            start, end = self._busy
            if any(start <= r.submitted <= end for r in self._inbox):
                self._top_up()  # they queued behind a busy model: others are likely coming
            arrived, self._inbox = self._inbox, []
        return arrived

    def _top_up(self) -> None:
        """Wait up to max_wait for a fuller batch (called under the lock)."""
        deadline = time.monotonic() + self.settings.max_wait
        while self._queued < self.settings.max_batch and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _count(self, requests: list[Request]) -> None:
        """Count tokens (one tokenizer call per kind of request); bad input fails its owner."""
        groups: dict[tuple, list[Request]] = {}
        for r in requests:
            if r.tokens is None:
                groups.setdefault(r.key, []).append(r)
        limit = self.provider.max_tokens
        for (input_type, _), group in groups.items():
            try:
                done = self.provider.tokenized([t for r in group for t in r.texts], input_type)
            except BaseException:  # noqa: BLE001 - someone's input is bad: find whose, one by one
                for r in group:
                    self._count_alone(r, input_type)
                continue
            at = 0
            for r in group:
                r.counted(TokenCounts.of(done.lengths[at:at + len(r.texts)], limit))
                if done.rows is not None:
                    r.rows = done.rows[at:at + len(r.texts)]
                at += len(r.texts)

    def _count_alone(self, request: Request, input_type: str | None) -> None:
        try:
            request.counted(count_tokens(self.provider, request.texts, input_type))
        except ProviderError as exc:
            _settle(request, error=exc)

    def _prune(self) -> None:
        """Drop settled requests (bad input, a failed call, or the client left)."""
        keep, gone = [], []
        for r in self._waiting:
            (gone if r.future.done() else keep).append(r)
        if gone:
            self._waiting = keep
            self._forget(sum(len(r.todo) for r in gone))

    def _mark_taken(self, batch: list[Item]) -> None:
        """Take the batch's texts off their requests' lists (they go in todo order)."""
        taken = Counter(id(r) for r, _ in batch)
        for r in owners(batch):
            del r.todo[:taken[id(r)]]
        self._waiting = [r for r in self._waiting if r.todo]
        self._forget(len(batch))

    def _forget(self, texts: int) -> None:
        with self._cond:
            self._queued -= texts
            metrics.QUEUE_SIZE.set(self._queued)

    def _run_batch(self, batch: list[Item]) -> None:
        """Run the batch in length-sorted model calls; answer each request after its last one."""
        calls = split_calls(batch, self.settings.call_size)
        last = last_call(calls)
        start = time.perf_counter()
        for k, call in enumerate(calls):
            live = [it for it in call if not it[0].future.done()]
            if live:
                self._run_call(live)
            # Before any answer: a client answered now may send its next request at once.
            self._busy = (start, time.perf_counter())
            for r in owners(live):
                if last[id(r)] == k and not r.todo:
                    _settle(r, result=_result(r))

    def _run_call(self, items: list[Item]) -> None:
        """One model call; on failure retry each request alone so bad input fails only its own."""
        input_type, dimensions = items[0][0].key
        start = time.perf_counter()
        for r in owners(items):
            if r.started is None:
                r.started = start
                metrics.QUEUE_WAIT.observe(start - r.submitted)
        texts = [r.texts[i] for r, i in items]
        try:
            if all(r.rows is not None for r, _ in items):  # tokenized once, when counted
                vectors = self.provider.encode(texts, input_type, dimensions,
                                               [r.rows[i] for r, i in items])
            else:
                vectors = self.provider.encode(texts, input_type, dimensions)
        except BaseException as exc:  # whom it concerns is found below
            groups = by_owner(items)
            if len(groups) > 1:
                for group in groups:
                    self._run_call(group)
                return
            if not isinstance(exc, ProviderError):
                log.error("embedding a batch failed", exc_info=exc)
            _settle(items[0][0], error=exc)
            return
        self._observe(items, time.perf_counter() - start)
        for (r, i), vector in zip(items, vectors):
            if r.vectors is None:
                r.vectors = np.empty((len(r.texts), vector.shape[0]), dtype=vector.dtype)
            r.vectors[i] = vector

    def _observe(self, items: list[Item], elapsed: float) -> None:
        metrics.BATCH_SIZE.observe(len(items))
        metrics.BATCH_TOKENS.observe(padded_tokens(items))
        metrics.INFERENCE.observe(elapsed)
        for r in owners(items):
            r.inference += elapsed
        self._rate = learn_rate(self._rate, len(items), elapsed, self.settings.call_size)


def _result(request: Request) -> BatchedEmbeddings:
    """The embeddings of a request whose texts are all done, with where its time went."""
    total = time.perf_counter() - request.submitted
    return BatchedEmbeddings.counted(request.vectors, request.tokens,
                                     queue_seconds=max(total - request.inference, 0.0),
                                     inference_seconds=request.inference)


def _settle(request: Request, *, result: BatchedEmbeddings | None = None,
            error: BaseException | None = None) -> None:
    """Complete the request's future, unless it is already done (failed, or the client left)."""
    if error is not None and not isinstance(error, Exception):  # a panic: a 500, not a crash
        failure = RuntimeError(f"the model failed on this request ({type(error).__name__})")
        failure.__cause__ = error
        error = failure
    try:
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result)
    except InvalidStateError:
        pass


_QUEUES: weakref.WeakSet[BatchingQueue] = weakref.WeakSet()


def _after_fork() -> None:
    # The child has no worker thread and may hold a copy of a locked lock: start afresh.
    for q in list(_QUEUES):
        q._start_fresh()


os.register_at_fork(after_in_child=_after_fork)
