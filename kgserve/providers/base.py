"""The interface every embedding provider implements, and the config it is built from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np

from kgserve import redact
from kgserve.providers.options import INPUT_TYPES


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


@dataclass(frozen=True)
class TokenCounts:
    """Each input's tokens before truncation (`raw`) against the model's `limit` (None: none).

    The one owner of what truncation does to a count: the model reads min(n, limit) tokens of an
    input, and an input over the limit is cut, or refused when the request says `truncate: false`.
    """

    raw: tuple[int, ...] = ()
    limit: int | None = None

    @classmethod
    def of(cls, raw: Iterable[int], limit: int | None) -> TokenCounts:
        """Counts from any iterable of untruncated token counts."""
        return cls(tuple(raw), limit or None)

    @property
    def exceeds(self) -> list[bool]:
        """For each input: is it longer than the model reads?"""
        limit = self.limit
        return [n > limit for n in self.raw] if limit else [False] * len(self.raw)

    @property
    def seen(self) -> list[int]:
        """The tokens the model reads of each input."""
        return [min(n, self.limit) for n in self.raw] if self.limit else list(self.raw)

    @property
    def prompt_tokens(self) -> int:
        """The tokens the model reads of all inputs (usage.prompt_tokens)."""
        return sum(self.seen)

    @property
    def truncated(self) -> int:
        """How many inputs are cut at the limit."""
        return sum(self.exceeds)

    def refuse_truncation(self) -> None:
        """Raise InputTooLong for the first input longer than the model reads."""
        for i, (n, over) in enumerate(zip(self.raw, self.exceeds)):
            if over:
                raise InputTooLong(i, n, self.limit)


@dataclass
class Embeddings:
    """The vectors for a list of texts, in input order, and the tokens they cost."""

    vectors: np.ndarray  # shape (n, d), float32 (float16 when precision is float16)
    prompt_tokens: int  # tokens the model saw: after truncation, without padding
    truncated: int = 0  # inputs cut at the model's max_seq_length
    tokens: TokenCounts | None = None  # each input's count, when the provider knows them

    @classmethod
    def counted(cls, vectors: np.ndarray, tokens: TokenCounts, **more: Any) -> Self:
        """Embeddings whose usage follows from each input's `tokens`."""
        return cls(vectors, tokens.prompt_tokens, tokens.truncated, tokens, **more)


@dataclass(frozen=True)
class Tokenized:
    """Each text's token count before truncation, and the tokenizer's work that encode() can
    take instead of tokenizing the same texts again (None: encode() tokenizes)."""

    lengths: list[int]
    rows: list | None = None


@dataclass(frozen=True)
class Capabilities:
    """What serving may do around a provider (the provider states it; serving never asks which
    provider it is)."""

    batched: bool = False  # concurrent requests gain from sharing model calls (a queue in front)
    counts_tokens: bool = False  # counts exactly before embedding: `truncate: false` checked here
    cacheable: bool = False  # each input's vector and token count stand alone: answers can be kept


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


class TokenizerUnavailable(ProviderError):
    """The provider cannot count tokens on this machine (e.g. no offline tiktoken encoding)."""

    code = "tokenizer_unavailable"


class UpstreamError(ProviderError):
    """The remote API (OpenAI) failed or refused the request."""

    code = "upstream_error"


class EmbeddingProvider(ABC):
    """A loaded model or remote API that turns texts into vectors. Thread-safe once loaded."""

    capabilities = Capabilities()  # a remote API: no queue, no token counts of its own, no cache

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

    def token_lengths(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Return each text's token count before truncation (task prefix and special tokens
        included)."""
        return [len(ids) for ids in self.tokenize(texts, input_type)]

    def tokenized(self, texts: list[str], input_type: str | None = None) -> Tokenized:
        """Count each text's tokens (as token_lengths), keeping what encode() can reuse."""
        return Tokenized(self.token_lengths(texts, input_type))

    def tokenize(self, texts: list[str], input_type: str | None = None) -> list[list[int]]:
        """Return each text's token ids, untruncated; TokenizerUnavailable if it cannot."""
        raise TokenizerUnavailable(f"token counting is not available for {self.model!r}")

    def encode(self, texts: list[str], input_type: str | None = None,
               dimensions: int | None = None, rows: list | None = None) -> np.ndarray:
        """Return the vectors of checked, non-empty `texts` in one model call, counting nothing;
        `rows`, when given, are the texts' Tokenized.rows.

        The batching queue's path: it has checked the request and counted its tokens already.
        """
        raise NotImplementedError

    def check_request(self, texts: list[str], input_type: str | None,
                      dimensions: int | None) -> None:
        """Raise InvalidInput unless `texts` is a list of strings, `input_type` is None, 'query'
        or 'document' and `dimensions` is None or 1..dimensions (the one check per request)."""
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("input must be a list of strings")
        if input_type is not None and input_type not in INPUT_TYPES:
            raise InvalidInput("input_type must be 'query' or 'document', not "
                               f"{redact.echo(input_type)}")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                       or not 1 <= dimensions <= self.dimensions):
            raise InvalidDimensions(self.model, self.dimensions)

    def close(self) -> None:
        """Release the model's memory."""
