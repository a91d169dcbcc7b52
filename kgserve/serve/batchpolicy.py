"""What goes into a batch, as pure functions over waiting requests (no threads, no model).

batching.py runs them in its worker thread; tests call them directly. The rules follow
huggingface/text-embeddings-inference's queue (a padded-token budget per batch) and
michaelfeil/infinity's (length-sorted model calls), with a round-robin take so that one large
request cannot hold up small ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..providers.base import TokenCounts


@dataclass(frozen=True)
class BatchSettings:
    """How the queue forms batches (per worker process)."""

    max_batch: int = 32  # texts per batch (the config's batch_size)
    max_tokens: int = 8192  # padded tokens per batch: longest text x count
    max_wait: float = 0.002  # seconds to top up a batch, only after the model was busy
    max_queue: int = 2048  # texts waiting (not yet in a batch) before new requests get 429
    # A batch runs, sorted by length, in model calls of about this many texts: on CPU a small
    # call of short texts is as efficient per text as a large one, and shorter calls pad less.
    call_size: int = 8


@dataclass(eq=False)
class Request:
    """One client's texts on their way through batches; `future` gets its result."""

    texts: list[str]
    key: tuple  # (input_type, dimensions): only requests of one key share a model call
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)
    tokens: TokenCounts | None = None  # each text's tokens, counted before batching
    lengths: list[int] = field(default_factory=list)  # tokens the model reads of each text
    rows: list | None = None  # each text's tokenizer output, when the provider reuses it
    todo: list[int] = field(init=False)  # indexes of texts not in a batch yet, shortest first
    vectors: np.ndarray | None = None  # filled row by row as model calls finish
    started: float | None = None  # when its first text went into a model call
    inference: float = 0.0  # seconds of model calls its texts were part of

    def __post_init__(self) -> None:
        self.todo = list(range(len(self.texts)))

    def counted(self, tokens: TokenCounts) -> None:
        """Record each text's tokens; texts go into batches shortest first."""
        self.tokens = tokens
        self.lengths = tokens.seen
        self.todo = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)


Item = tuple[Request, int]  # one text: its request and its index there


def take_batch(waiting: Sequence[Request], max_batch: int, max_tokens: int) -> list[Item]:
    """Choose the next batch from counted requests (oldest first); change nothing.

    Only requests of the oldest one's key take part. They give one text each per round, so a big
    request cannot hog the batch; a text joins while the batch stays within `max_batch` texts
    and `max_tokens` padded tokens (longest x count). The first text always joins.
    """
    head = next((r for r in waiting if r.todo), None)
    if head is None:
        return []
    same = [r for r in waiting if r.key == head.key and r.todo][:max_batch]
    taken = [0] * len(same)  # texts taken from each request so far
    items: list[Item] = []
    longest = 0
    progress = True
    while progress and len(items) < max_batch:
        progress = False
        for k, r in enumerate(same):
            if taken[k] >= len(r.todo) or len(items) >= max_batch:
                continue
            i = r.todo[taken[k]]
            n = r.lengths[i]
            if items and max(longest, n) * (len(items) + 1) > max_tokens:
                continue
            items.append((r, i))
            taken[k] += 1
            longest = max(longest, n)
            progress = True
    return items


def split_calls(items: Sequence[Item], call_size: int) -> list[list[Item]]:
    """Sort a batch by length and cut it into model calls of about `call_size` texts each."""
    ordered = sorted(items, key=lambda it: it[0].lengths[it[1]])
    calls = max(1, len(ordered) // max(1, call_size))
    bounds = [round(k * len(ordered) / calls) for k in range(calls + 1)]
    return [ordered[lo:hi] for lo, hi in pairwise(bounds)]


def owners(items: Sequence[Item]) -> list[Request]:
    """The requests whose texts are in `items`, in order of first appearance."""
    return list({id(r): r for r, _ in items}.values())


def by_owner(items: Sequence[Item]) -> list[list[Item]]:
    """Group `items` per request, keeping their order (to retry each request alone)."""
    groups: dict[int, list[Item]] = {}
    for it in items:
        groups.setdefault(id(it[0]), []).append(it)
    return list(groups.values())


def last_call(calls: Sequence[Sequence[Item]]) -> dict[int, int]:
    """For each request (by id) in `calls`, the index of the last call holding one of its texts."""
    return {id(r): k for k, call in enumerate(calls) for r, _ in call}


def padded_tokens(items: Sequence[Item]) -> int:
    """Tokens the model computes for `items`: the longest text times the count."""
    return max((r.lengths[i] for r, i in items), default=0) * len(items)


@dataclass(frozen=True)
class DrainRate:
    """How fast a backed-up queue empties, in texts/s, learnt from the model calls that ran.

    A queue that refuses requests runs full calls (`call_size` texts or more), several times
    faster per text than the one-text calls of a quiet moment: once a full call has been seen,
    only full calls count (an average over all calls would overstate the wait many times)."""

    full: float = 0.0  # texts/s of full calls (0: none seen yet)
    any: float = 0.0  # texts/s of any call, until a full one is seen

    @property
    def per_second(self) -> float:
        return self.full or self.any


def learn_rate(rate: DrainRate, texts: int, seconds: float, call_size: int) -> DrainRate:
    """`rate` after a model call of `texts` texts that took `seconds`."""
    if seconds <= 0 or texts <= 0:
        return rate
    seen = texts / seconds
    if texts >= call_size:
        return DrainRate(full=seen if not rate.full else 0.8 * rate.full + 0.2 * seen,
                         any=rate.any)
    return DrainRate(full=rate.full, any=seen if not rate.any else 0.8 * rate.any + 0.2 * seen)


def retry_after(queued: int, rate: float) -> int:
    """Seconds until `queued` texts are likely done at `rate` texts/s (1..60; 50/s if unknown)."""
    return max(1, min(60, math.ceil(queued / (rate or 50.0))))
