"""Pick the fastest backend for a local model on this machine among those the accuracy guard passes.

`flask --app kgserve embedding set ... --fastest-backend` (and so `make run`): each candidate is
prepared exactly as a config change would prepare it (export from the cache, accuracy guard), then
timed on short texts, one per call and eight per call (the batching queue's CPU call size), with
the threads a gunicorn worker would get. The winner goes through the normal validate-then-commit
path; refused candidates are reported with their reason.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

from .providers.base import ProviderConfig, ProviderError
from .runtime import Runtime
from .threads import per_worker

CANDIDATES = (("openvino", "int8"), ("onnx", "int8"), ("openvino", "float32"),
              ("onnx", "float32"), ("torch", "float32"))
_TEXTS = ["how do embeddings work", "cheap flights to Oslo in March",
          "PostgreSQL stores each row version in a heap page",
          "Die Bahn hat heute wieder Verspätung", "best pizza near the station",
          "what is a knowledge graph used for", "python list comprehension with a condition",
          "The meeting moved to Thursday because the projector is broken."]


@dataclass
class Trial:
    """One candidate's outcome: texts/s (None when refused) and the reason or guard figures."""

    backend: str
    precision: str
    texts_per_second: float | None
    note: str


def measure(provider, seconds: float) -> float:
    """Texts per second over alternating 1-text and 8-text calls (medians of each).

    Every call's texts are new ones (numbered): a prepared provider caches embeddings, and a
    repeated text would time the cache, the same for every backend."""
    singles, batches = [], []
    numbers = itertools.count()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(singles) < 3:
        for size, into in ((1, singles), (8, batches)):
            texts = [f"{text} ({next(numbers)})" for text in _TEXTS[:size]]
            start = time.perf_counter()
            provider.embed(texts)
            into.append(time.perf_counter() - start)
    return 9 / (statistics.median(singles) + statistics.median(batches))


def describe_timing(threads: int, seconds: float = 2.0) -> str:
    """What measure() times, in words."""
    return (f"embedding {len(_TEXTS)} short texts one and eight per call for {seconds:g} s "
            f"with {threads} thread{'s' if threads != 1 else ''} (a gunicorn worker's share)")


def trial(rt: Runtime, data: dict[str, Any], seconds: float = 2.0) -> list[Trial]:
    """Prepare and time every candidate for the config `data` (ConfigRequestSchema output)."""
    threads = data.get("num_threads") or per_worker()
    results = []
    for backend, precision in CANDIDATES:
        values = {k: v for k, v in data.items() if k != "allow_dimension_change"}
        cfg = ProviderConfig.from_row({**values, "backend": backend, "precision": precision,
                                       "num_threads": threads})
        try:
            provider = rt.manager.prepare(cfg)
        except ProviderError as exc:
            results.append(Trial(backend, precision, None, f"refused: {exc}"))
            continue
        try:
            guard = getattr(provider, "guard", None)
            note = f"guard {guard.describe()}" if guard else "reference"
            results.append(Trial(backend, precision, measure(provider, seconds), note))
        finally:
            provider.close()
    return results


def best(trials: list[Trial]) -> Trial:
    """The fastest candidate that loaded (torch always can, or nothing could)."""
    ready = [t for t in trials if t.texts_per_second is not None]
    if not ready:
        raise ProviderError("no backend could load this model: "
                            + "; ".join(f"{t.backend} {t.precision}: {t.note}" for t in trials))
    return max(ready, key=lambda t: t.texts_per_second)
