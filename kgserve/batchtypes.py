"""What the batching queue trades in: its settings, errors, results and one request's state."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .providers.base import Embeddings, ProviderError


class QueueFull(ProviderError):
    """Too many texts are waiting in this worker; the client should retry after `retry_after` s."""

    status = 429
    code = "queue_full"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class QueueClosed(ProviderError):
    """The provider behind the queue was replaced or shut down; a retry reaches the new one."""

    status = 503
    code = "model_not_ready"


@dataclass(frozen=True)
class BatchSettings:
    """How the queue forms batches (per worker process)."""

    max_batch: int = 32  # texts per model call (the config's batch_size)
    max_tokens: int = 8192  # padded tokens per model call: longest text x count
    max_wait: float = 0.002  # seconds to top up a batch, only after the model was busy
    max_queue: int = 2048  # texts waiting (not yet in a batch) before new requests get 429
    # A gathered batch runs, sorted by length, in model calls of about this many texts: on CPU
    # a call of 8 short texts is as efficient per text as one of 32, and shorter calls pad less.
    call_size: int = 8


@dataclass
class BatchedEmbeddings(Embeddings):
    """Embeddings plus where the request spent its time."""

    queue_seconds: float = 0.0
    inference_seconds: float = 0.0


class Pending:
    """One client request: its texts, progress through batches and its result."""

    __slots__ = ("done", "error", "inference", "key", "left", "next", "order", "started",
                 "submitted", "texts", "tokens", "vectors")

    def __init__(self, texts: list[str], key: tuple) -> None:
        self.texts, self.key = texts, key
        self.tokens: list[int] | None = None  # counted by the worker before batching
        self.order: list[int] = []  # text indexes, shortest first: big requests pad less
        self.next = 0  # position in `order` of the next text to put in a batch
        self.left = len(texts)  # texts not embedded yet
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.submitted = time.perf_counter()
        self.started: float | None = None
        self.inference = 0.0

    def set_tokens(self, counts: list[int]) -> None:
        self.tokens = list(counts)
        self.order = sorted(range(len(counts)), key=self.tokens.__getitem__)

    def fail(self, exc: BaseException) -> None:
        if not self.done.is_set():
            self.error = exc
            self.done.set()
