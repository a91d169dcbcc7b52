"""Helpers for the onnx/openvino backend tests: configs, loaded providers, cosines."""

from __future__ import annotations

from tests.support.kgs import MINILM, cosine

__all__ = ["MINILM", "cosine", "cpu", "loaded"]


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
