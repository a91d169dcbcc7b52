"""Embedding providers; build_provider() picks one by name and imports its heavy modules lazily."""

from __future__ import annotations

from kgserve.providers.base import (
    DeviceUnavailable,
    EmbeddingProvider,
    Embeddings,
    InvalidDimensions,
    InvalidInput,
    ModelUnavailable,
    ProviderConfig,
    ProviderError,
    ResourceLimitExceeded,
    UpstreamError,
)
from kgserve.providers.options import PROVIDERS

__all__ = [
    "PROVIDERS", "DeviceUnavailable", "EmbeddingProvider", "Embeddings", "InvalidDimensions",
    "InvalidInput", "ModelUnavailable", "ProviderConfig", "ProviderError",
    "ResourceLimitExceeded", "UpstreamError", "build_provider",
]


def build_provider(cfg: ProviderConfig) -> EmbeddingProvider:
    """Return an unloaded provider for `cfg`; the caller calls .load() (which may raise)."""
    if cfg.provider == "local":
        from kgserve.providers.local import LocalProvider

        return LocalProvider(cfg)
    if cfg.provider == "openai":
        from kgserve.providers.openai import OpenAIProvider

        return OpenAIProvider(cfg)
    raise ProviderError(f"unknown provider {cfg.provider!r}; use one of {', '.join(PROVIDERS)}")
