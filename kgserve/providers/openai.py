"""The OpenAI provider: the official openai SDK (OPENAI_API_KEY, OPENAI_BASE_URL, retries)."""

from __future__ import annotations

import base64
import logging
import os
import time

import numpy as np
import openai

from kgserve import redact
from kgserve.providers.base import (
    EmbeddingProvider,
    Embeddings,
    InvalidInput,
    ProviderConfig,
    ProviderError,
    UpstreamError,
)
from kgserve.providers.tiktoken_offline import encoding_for

log = logging.getLogger(__name__)

MAX_INPUTS_PER_CALL = 2048
MAX_TOKENS_PER_INPUT = 8191  # the embedding models' limit on one input (the API refuses more)
MAX_TOKENS_PER_CALL = 300_000  # the API's limit on the tokens of all inputs of one call
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                     "text-embedding-ada-002": 1536}
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3


def shortens_upstream(model: str) -> bool:
    """Say whether the API itself honours `dimensions` for `model` (text-embedding-3-*)."""
    return model.startswith("text-embedding-3")


def _env_number(name: str, default: float, cast: type) -> float:
    """Read a positive number from the environment, or `default`."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ProviderError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ProviderError(f"{name} must not be negative")
    return value


class OpenAIProvider(EmbeddingProvider):
    """Embeddings from the OpenAI API (or an OpenAI-compatible endpoint)."""

    def __init__(self, config: ProviderConfig, *, timeout: float | None = None,
                 max_retries: int | None = None) -> None:
        super().__init__(config)
        self.device = "remote"
        self.timeout = timeout if timeout is not None else \
            _env_number("KG_OPENAI_TIMEOUT", DEFAULT_TIMEOUT, float)
        self.max_retries = max_retries if max_retries is not None else \
            int(_env_number("KG_OPENAI_MAX_RETRIES", DEFAULT_MAX_RETRIES, int))
        self._client: openai.OpenAI | None = None
        self._key = ""

    def load(self) -> None:
        """Check the key and the size, then make one tiny call to prove model and size work."""
        started = time.perf_counter()
        cfg = self.config
        self._key = os.environ.get("OPENAI_API_KEY", "").strip()
        if not self._key:
            raise ProviderError("OPENAI_API_KEY is not set; set it in the server's environment "
                                "to use the openai provider")
        native = NATIVE_DIMENSIONS.get(cfg.model_name)
        if cfg.embedding_dimensions < 1:
            raise ProviderError("embedding_dimensions must be at least 1")
        if native is not None and cfg.embedding_dimensions > native:
            raise ProviderError(f"embedding_dimensions={cfg.embedding_dimensions} is larger than "
                                f"the native size of {cfg.model_name!r} ({native})")
        self._client = openai.OpenAI(api_key=self._key, timeout=self.timeout,
                                     max_retries=self.max_retries)
        try:
            probe, _ = self._call(["ping"], cfg.embedding_dimensions)
        except ProviderError as exc:
            self.close()
            raise ProviderError(f"the OpenAI API refused model {cfg.model_name!r}: {exc}") from exc
        if probe.shape[1] < cfg.embedding_dimensions:
            self.close()
            raise ProviderError(f"model {cfg.model_name!r} returns {probe.shape[1]}-d vectors, "
                                f"fewer than embedding_dimensions={cfg.embedding_dimensions}")
        self.load_seconds = time.perf_counter() - started
        log.info("openai provider ready: %s (%d-d) at %s in %.2fs", cfg.model_name,
                 self.dimensions, redact.url(self._client.base_url), self.load_seconds)

    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> Embeddings:
        """Embed `texts` in calls of at most 2048 inputs; `input_type` does not apply to OpenAI."""
        self.check_request(texts, input_type, dimensions)
        size = dimensions or self.dimensions
        if not texts:
            return Embeddings(np.zeros((0, size), dtype=self._dtype()), 0)
        parts, tokens = [], 0
        for chunk in api_chunks(texts):  # one call per request unless it exceeds the API limits
            vectors, used = self._call(chunk, size)
            parts.append(vectors)
            tokens += used
        vectors = np.vstack(parts)
        if vectors.shape[1] != size:  # models without upstream `dimensions`: shorten here
            vectors = vectors[:, :size]
            if self.config.normalize_embeddings:
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True),
                                               1e-12)
        return Embeddings(np.ascontiguousarray(vectors, dtype=self._dtype()), tokens)

    def tokenize(self, texts: list[str], input_type: str | None = None) -> list[list[int]]:
        """Return each text's token ids with tiktoken's encoding for the model (offline only)."""
        encoding = encoding_for(self.model)
        return [encoding.encode_ordinary(t) for t in texts]

    @property
    def max_tokens(self) -> int | None:
        """The API's limit on one input (8191 tokens for its embedding models)."""
        return MAX_TOKENS_PER_INPUT if self.model in NATIVE_DIMENSIONS else None

    def check_request(self, texts: list[str], input_type: str | None,
                      dimensions: int | None) -> None:
        """Check as every provider does; the API also refuses empty strings."""
        super().check_request(texts, input_type, dimensions)
        if any(t == "" for t in texts):
            raise InvalidInput("input strings must not be empty for the openai provider")

    def _call(self, texts: list[str], size: int) -> tuple[np.ndarray, int]:
        """Make one embeddings call; return (vectors in input order, prompt tokens)."""
        client = self._client
        if client is None:
            raise ProviderError(f"provider for {self.model!r} is not loaded")
        extra = {"dimensions": size} if shortens_upstream(self.model) else {}
        try:
            resp = client.embeddings.create(model=self.model, input=texts,
                                            encoding_format="base64", **extra)
        except openai.BadRequestError as exc:
            raise InvalidInput(f"the OpenAI API refused the request: {self._reason(exc)}") from None
        except openai.APIStatusError as exc:
            raise UpstreamError(f"the OpenAI API answered {exc.status_code}: "
                                f"{self._reason(exc)}") from None
        except openai.APITimeoutError:
            raise UpstreamError(f"the OpenAI API did not answer within {self.timeout:g}s "
                                f"({self.max_retries} retries)") from None
        except openai.APIConnectionError:
            raise UpstreamError(f"could not reach the OpenAI API at {redact.url(client.base_url)} "
                                f"({self.max_retries} retries)") from None
        except openai.OpenAIError as exc:
            raise UpstreamError(f"the OpenAI API call failed: {self._scrub(str(exc))}") from None
        rows = sorted(resp.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise UpstreamError(f"the OpenAI API returned {len(rows)} vectors for "
                                f"{len(texts)} inputs")
        vectors = np.vstack([_decode(r.embedding) for r in rows])
        tokens = resp.usage.prompt_tokens if resp.usage else 0
        return vectors, tokens

    def _reason(self, exc: openai.APIStatusError) -> str:
        """Return the upstream error message, without any key in it."""
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        message = err.get("message") if isinstance(err, dict) else None
        return self._scrub(str(message or exc.message or f"HTTP {exc.status_code}"))

    def _scrub(self, text: str) -> str:
        """`text` without the API key, anything shaped like one, or credentials in URLs."""
        return redact.text(text, secrets=(self._key,))

    def close(self) -> None:
        """Close the HTTP client."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def api_chunks(texts: list[str]) -> list[list[str]]:
    """Split `texts` into calls within the API's limits; a token is never less than a byte."""
    chunks: list[list[str]] = [[]]
    budget = 0
    for text in texts:
        cost = len(text.encode("utf-8", "surrogatepass"))
        if chunks[-1] and (len(chunks[-1]) == MAX_INPUTS_PER_CALL
                           or budget + cost > MAX_TOKENS_PER_CALL):
            chunks.append([])
            budget = 0
        chunks[-1].append(text)
        budget += cost
    return chunks


def _decode(value: str | list[float]) -> np.ndarray:
    """Turn a base64 (little-endian float32) or float-list embedding into a float32 vector."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)
