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
    prompt_tokens: int  # tokens the model saw: after truncation, without padding
    truncated: int = 0  # inputs cut at the model's max_seq_length
    lengths: list[int] | None = None  # tokens per input before truncation, when known


def shaped_embeddings(vectors: np.ndarray, raw: list[int], limit: int | None) -> Embeddings:
    """Embeddings for `vectors` from untruncated token counts `raw` and the model's `limit`."""
    seen = sum(min(n, limit) for n in raw) if limit else sum(raw)
    truncated = sum(n > limit for n in raw) if limit else 0
    return Embeddings(vectors, seen, truncated, list(raw))


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


class InputTooLong(InvalidInput):
    """An input has more tokens than the model reads and the request said `truncate: false`."""

    code = "input_too_long"
    param = "input"

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"input[{index}] has {tokens} tokens, more than the model's limit of "
                         f"{limit} (max_seq_length); shorten it, or send truncate: true")
        self.index, self.tokens, self.limit = index, tokens, limit


def check_lengths(lengths: list[int], limit: int | None) -> None:
    """Raise InputTooLong for the first of `lengths` (untruncated) above `limit`."""
    if limit:
        for i, n in enumerate(lengths):
            if n > limit:
                raise InputTooLong(i, n, limit)


class TokenizerUnavailable(ProviderError):
    """The provider cannot count tokens on this machine (e.g. no offline tiktoken encoding)."""

    code = "tokenizer_unavailable"


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

    @property
    def max_tokens(self) -> int | None:
        """The most tokens of one input the model reads (its max_seq_length); None: unknown."""
        return None

    def count_tokens(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Return the token count of each text (after truncation at max_seq_length)."""
        limit = self.max_tokens
        lengths = self.token_lengths(texts, input_type)
        return [min(n, limit) for n in lengths] if limit else lengths

    def token_lengths(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Return each text's token count before truncation (task prefix and special tokens
        included)."""
        return [len(ids) for ids in self.tokenize(texts, input_type)]

    def tokenize(self, texts: list[str], input_type: str | None = None) -> list[list[int]]:
        """Return each text's token ids, untruncated; TokenizerUnavailable if it cannot."""
        raise TokenizerUnavailable(f"token counting is not available for {self.model!r}")

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
