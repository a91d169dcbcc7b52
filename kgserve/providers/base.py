"""The interface every embedding provider implements, and the config it is built from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ProviderConfig:
    """The columns of a kg_api.embedding_config row that decide how a provider is built."""

    provider: str  # 'local' | 'openai'
    model_name: str
    embedding_dimensions: int
    precision: str = "float32"  # 'float32' | 'float16' | 'int8' (onnx/openvino only)
    backend: str = "torch"  # 'torch' | 'onnx' | 'openvino' (local provider only)
    max_memory_mb: int | None = None
    num_threads: int | None = None
    device: str | None = None  # 'cpu' | 'cuda' | 'mps' | None = auto
    batch_size: int = 8
    max_seq_length: int | None = None
    normalize_embeddings: bool = True
    id: int | None = None  # the row id, None for a config not stored yet

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProviderConfig:
        """Build from a dict with (at least) the table's columns; extra keys are ignored."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names and v is not None}
        return cls(**values)


@dataclass
class Embeddings:
    """The vectors for a list of texts, in input order, and the tokens they cost."""

    vectors: np.ndarray  # shape (n, d), float32 (float16 when precision is float16)
    prompt_tokens: int


class ProviderError(Exception):
    """The provider cannot be built or cannot serve; message is safe to show a client."""

    code = "provider_error"
    param: str | None = None  # the request or config field at fault, when there is one


class ModelUnavailable(ProviderError):
    """The model is not available offline (not in the HF cache nor in an installed package)."""

    code = "model_not_available"


class DeviceUnavailable(ProviderError):
    """The configured device does not exist on this machine."""

    code = "device_not_available"


class ResourceLimitExceeded(ProviderError):
    """The model does not fit the configured limits (e.g. max_memory_mb)."""

    code = "resource_limit_exceeded"


class InvalidInput(ProviderError):
    """The request asks for something the provider cannot do (bad `dimensions`, `input_type`)."""

    code = "invalid_request"


class InvalidDimensions(InvalidInput):
    """`dimensions` is outside 1..`limit` for the served model."""

    code = "invalid_dimensions"
    param = "dimensions"

    def __init__(self, model: str, limit: int) -> None:
        super().__init__(f"dimensions must be between 1 and {limit} for {model}")
        self.limit = limit


class UpstreamError(ProviderError):
    """The remote API (OpenAI) failed or refused the request."""

    code = "upstream_error"


class EmbeddingProvider(ABC):
    """A loaded model or remote API that turns texts into vectors. Thread-safe once loaded."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.device: str = "remote"
        self.load_seconds: float | None = None

    @property
    def model(self) -> str:
        """The model name reported in responses."""
        return self.config.model_name

    @property
    def dimensions(self) -> int:
        """The size of the vectors this provider returns by default."""
        return self.config.embedding_dimensions

    def _dtype(self) -> type:
        """Return the output vector type for the configured precision."""
        return np.float16 if self.config.precision == "float16" else np.float32

    @abstractmethod
    def load(self) -> None:
        """Build, load and warm the model (or check the remote API); raise ProviderError."""

    @abstractmethod
    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> Embeddings:
        """Embed `texts` in order; `input_type` 'query'|'document'; `dimensions` truncates."""

    def count_tokens(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Return the token count of each text (after truncation at max_seq_length)."""
        raise NotImplementedError

    def encode(self, texts: list[str], input_type: str | None = None,
               dimensions: int | None = None) -> np.ndarray:
        """Return the vectors of checked, non-empty `texts` in one model call, counting nothing.

        The batching queue's path: it has checked the request and counted its tokens already.
        """
        raise NotImplementedError

    def check_request(self, texts: list[str], input_type: str | None,
                      dimensions: int | None) -> None:
        """Raise InvalidInput unless `texts` is a list of strings, `input_type` is None, 'query'
        or 'document' and `dimensions` is None or 1..dimensions (the one check per request)."""
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("input must be a list of strings")
        if input_type not in (None, "query", "document"):
            raise InvalidInput(f"input_type must be 'query' or 'document', not {input_type!r}")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                       or not 1 <= dimensions <= self.dimensions):
            raise InvalidDimensions(self.model, self.dimensions)

    def close(self) -> None:
        """Release the model's memory."""
