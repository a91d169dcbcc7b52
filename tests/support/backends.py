"""Helpers for the onnx/openvino backend tests: configs, loaded providers, cosines."""

from __future__ import annotations

import numpy as np

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def cpu(backend: str, precision: str = "float32", model: str = MINILM, dims: int = 384, **kw):
    """A local provider config on the CPU with `backend` and `precision`."""
    from kgserve.providers import ProviderConfig

    return ProviderConfig(provider="local", model_name=model, embedding_dimensions=dims,
                          precision=precision, backend=backend, device="cpu", **kw)


def loaded(cfg):
    """Build and load a provider."""
    from kgserve.providers import build_provider

    provider = build_provider(cfg)
    provider.load()
    return provider


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
