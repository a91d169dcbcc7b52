"""A loaded provider behind a gate, for tests of the batching queue: it records every model call
and, while held, keeps the queue's worker inside one, so that requests sent meanwhile queue up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.waiting import BOUND, join, start_threads


class Gate:
    """Stands in for `provider` in one BatchingQueue (it never loads or closes it)."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.calls: list[list[str]] = []  # the texts of every model call, in order
        self._open = threading.Event()
        self._open.set()
        self._inside = threading.Event()

    def check_request(self, texts, input_type, dimensions) -> None:
        self.provider.check_request(texts, input_type, dimensions)

    def token_lengths(self, texts, input_type=None) -> list[int]:
        return self.provider.token_lengths(texts, input_type)

    def tokenized(self, texts, input_type=None):
        return self.provider.tokenized(texts, input_type)

    @property
    def max_tokens(self):
        return self.provider.max_tokens

    def embed(self, texts, input_type=None, dimensions=None):
        return self.provider.embed(texts, input_type, dimensions)

    def encode(self, texts, input_type=None, dimensions=None, rows=None):
        self.calls.append(list(texts))
        if not self._open.is_set():
            self._inside.set()
            assert self._open.wait(BOUND), "the gate was never opened"
        return self.provider.encode(texts, input_type, dimensions, rows)

    @contextmanager
    def held(self, queue) -> Iterator[None]:
        """Keep `queue`'s worker in a model call (of one text, its own) while inside."""
        self._open.clear()
        self._inside.clear()
        results, threads = start_threads([lambda: queue.embed(["holding the worker"])])
        try:
            assert self._inside.wait(BOUND), f"the worker never reached the gate: {results}"
            yield
        finally:
            self._open.set()
            join(threads)
        assert not isinstance(results[0], Exception), results[0]
