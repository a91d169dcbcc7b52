"""The accuracy guard: a candidate backend must embed the probe set like torch float32 does."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from kgmigrate.durable import atomic_write, private_folder

from ..base import ProviderError
from .probes import probe_texts

log = logging.getLogger(__name__)

DEFAULT_BOUNDS = {"int8": 0.98}
DEFAULT_BOUND = 0.999


class AccuracyRefused(ProviderError):
    """The candidate's vectors are too far from torch float32's on the probe set."""

    code = "accuracy_guard_refused"
    param = "precision"


def bound_for(precision: str) -> float:
    """The minimum cosine a candidate needs: KG_MIN_COSINE, else 0.98 for int8, else 0.999."""
    raw = os.environ.get("KG_MIN_COSINE", "").strip()
    if not raw:
        return DEFAULT_BOUNDS.get(precision, DEFAULT_BOUND)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not -1.0 <= value <= 1.0:
        raise ProviderError(f"KG_MIN_COSINE must be a number from -1 to 1, not {raw!r}")
    return value


@dataclass(frozen=True)
class GuardResult:
    """How close a candidate came to torch float32 on the probe set."""

    min_cosine: float
    mean_cosine: float
    bound: float
    probes: int
    reference: str = "torch float32"

    @property
    def passed(self) -> bool:
        return self.min_cosine >= self.bound

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        return (f"min cosine {self.min_cosine:.4f}, mean {self.mean_cosine:.4f} to "
                f"{self.reference} over {self.probes} probe texts (bound {self.bound})")


def compare(candidate: np.ndarray, reference: np.ndarray, dims: int, bound: float) -> GuardResult:
    """Cosines row by row after truncating both to `dims` (what clients receive)."""
    a = candidate[:, :dims].astype(np.float64)
    b = reference[:, :dims].astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                      1e-12)
    return GuardResult(round(float(cos.min()), 6), round(float(cos.mean()), 6), bound, len(cos))


def reference_vectors(st, folder: Path, model_fingerprint: str,
                      max_seq_length: int | None) -> np.ndarray:
    """torch float32 vectors of the probe set, cached in `folder` (computed once per model)."""
    texts = list(probe_texts())
    tag = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:8]
    name = (f"reference-{model_fingerprint[:20]}-{max_seq_length}-{tag}-"
            f"torch{metadata.version('torch')}.npy")
    path = folder / name
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(texts):
            return cached
    except (OSError, ValueError):
        pass
    previous = st.max_seq_length
    try:
        if max_seq_length:
            st.max_seq_length = max_seq_length
        vectors = np.asarray(st.encode(texts, batch_size=8, convert_to_numpy=True,
                                       normalize_embeddings=False, show_progress_bar=False),
                             dtype=np.float32)
    finally:
        st.max_seq_length = previous
    private_folder(folder)
    out = io.BytesIO()
    np.save(out, vectors, allow_pickle=False)
    atomic_write(path, out.getvalue())  # a reader sees the old file, none, or the whole new one
    return vectors
