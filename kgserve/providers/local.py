"""The local provider: a sentence-transformers model loaded from files already on this machine."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from pathlib import Path

# Never reach for the hub: every model comes from a bundle package, the cache or a directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from kgserve.providers.base import (
    DeviceUnavailable,
    EmbeddingProvider,
    Embeddings,
    ProviderConfig,
    ProviderError,
    ResourceLimitExceeded,
)
from kgserve.providers.resolve import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

MB = 1024 * 1024
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
_SKIP_DIRS = {"onnx", "openvino", ".git"}


def pick_device(requested: str | None) -> str:
    """Return the torch device to use: `requested`, or the best available (cuda, mps, cpu)."""
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind, _, index = requested.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and torch.cuda.is_available() and (
            not index or (index.isdigit() and int(index) < torch.cuda.device_count())):
        return requested
    if kind == "mps" and not index and torch.backends.mps.is_available():
        return "mps"
    if kind not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"unknown device {requested!r}; use cpu, cuda, cuda:N or mps")
    raise DeviceUnavailable(f"device {requested!r} is not available on this machine "
                            f"(available: {', '.join(available_devices())})")


def available_devices() -> list[str]:
    """List the devices torch can use here."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def weight_bytes_on_disk(folder: Path) -> int:
    """Sum the sizes of the weight files a load would read (safetensors preferred over .bin)."""
    total = 0
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS]
        weights = [f for f in files if f.endswith(_WEIGHT_SUFFIXES) and f not in _NOT_WEIGHTS]
        if any(f.endswith(".safetensors") for f in weights):
            weights = [f for f in weights if f.endswith(".safetensors")]
        total += sum(Path(directory, f).stat().st_size for f in weights)
    return total


def _check_config(cfg: ProviderConfig) -> None:
    """Refuse config values the provider cannot honour."""
    if cfg.precision not in ("float32", "float16"):
        raise ProviderError(f"precision must be 'float32' or 'float16', not {cfg.precision!r}")
    for name in ("embedding_dimensions", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ProviderError(f"{name} must be at least 1")
    for name in ("max_memory_mb", "num_threads", "max_seq_length"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ProviderError(f"{name} must be at least 1 when set")


class LocalProvider(EmbeddingProvider):
    """A sentence-transformers model in this process; embed() is serialised by a lock."""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.device = config.device or "auto"
        self.resolved: ResolvedModel | None = None
        self.native_dimensions: int | None = None
        self.max_seq_length: int | None = None
        self.prompts: dict[str, str] = {}
        self._st = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Resolve, check limits, load onto the device, apply settings and warm the model."""
        cfg = self.config
        started = time.perf_counter()
        _check_config(cfg)
        resolved = resolve_model(cfg.model_name)
        device = pick_device(cfg.device)
        half = cfg.precision == "float16" and device != "cpu"
        if cfg.max_memory_mb is not None:
            need = weight_bytes_on_disk(resolved.path) // (2 if half else 1)
            if need > cfg.max_memory_mb * MB:
                raise ResourceLimitExceeded(
                    f"model {resolved.name!r} needs about {_mb(need)} MB for its weights, more "
                    f"than max_memory_mb={cfg.max_memory_mb}")
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        st = _open(resolved, device)
        try:
            self._configure(st, resolved, half)
            self._st = st
            self._encode(["warm up"], None)
        except BaseException:
            self._st = None
            del st
            _release(device)
            raise
        self.resolved = resolved
        self.device = device
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s from %s on %s (%d-d, float %s) in %.2fs", resolved.name,
                 resolved.source, device, self.dimensions, cfg.precision, self.load_seconds)

    def _configure(self, st, resolved: ResolvedModel, half: bool) -> None:
        """Apply precision, memory limit, dimensions, sequence length and task prompts."""
        cfg = self.config
        if half:
            st.half()
        if cfg.max_memory_mb is not None:
            used = sum(t.numel() * t.element_size()
                       for t in [*st.parameters(), *st.buffers()])
            if used > cfg.max_memory_mb * MB:
                raise ResourceLimitExceeded(
                    f"model {resolved.name!r} takes {_mb(used)} MB of weights, more than "
                    f"max_memory_mb={cfg.max_memory_mb}")
        native = st.get_embedding_dimension()
        if native is not None and cfg.embedding_dimensions > native:
            raise ProviderError(
                f"embedding_dimensions={cfg.embedding_dimensions} is larger than the native size "
                f"of model {resolved.name!r} ({native}); use {native} or less")
        self.native_dimensions = native
        limits = [n for n in (cfg.max_seq_length, st.max_seq_length) if n]
        if limits:
            st.max_seq_length = min(limits)
        self.max_seq_length = st.max_seq_length
        self.prompts = _task_prompts(st, resolved)

    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> Embeddings:
        """Embed `texts` in one model call; truncate to `dimensions` and re-normalise."""
        self.check_request(texts, input_type, dimensions)
        if not texts:
            return Embeddings(np.zeros((0, dimensions or self.dimensions), dtype=self._dtype()), 0)
        vectors = self.encode(texts, input_type, dimensions)
        return Embeddings(vectors, sum(self.count_tokens(texts, input_type)))

    def encode(self, texts: list[str], input_type: str | None = None,
               dimensions: int | None = None) -> np.ndarray:
        """Return the vectors of checked `texts`: one model call, truncated, re-normalised."""
        vectors = self._encode(texts, input_type)[:, :dimensions or self.dimensions]
        if self.config.normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(vectors, dtype=self._dtype())

    def _encode(self, texts: list[str], input_type: str | None) -> np.ndarray:
        """Run the model under the lock; return float32 vectors."""
        st = self._st
        if st is None:
            raise ProviderError(f"model {self.model!r} is not loaded")
        prompt = self._prompt(input_type)
        with self._lock:
            out = st.encode(texts, prompt=prompt, batch_size=self.config.batch_size,
                            convert_to_numpy=True, normalize_embeddings=False,
                            show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def _prompt(self, input_type: str | None) -> str | None:
        """Return the text prepended for `input_type` (None: the model's default, if any)."""
        if input_type is not None:
            return self.prompts.get(input_type, "")
        st = self._st
        default = getattr(st, "default_prompt_name", None)
        return st.prompts.get(default, "") if default else ""

    def count_tokens(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Return each text's token count as the model sees it (prefix included, truncated)."""
        st = self._st
        if st is None:
            raise ProviderError(f"model {self.model!r} is not loaded")
        with self._lock:
            return self._token_counts(st, texts, self._prompt(input_type))

    def _token_counts(self, st, texts: list[str], prompt: str | None) -> list[int]:
        """Tokenize like the model does (special tokens, truncation) and count."""
        if prompt:
            texts = [prompt + t for t in texts]
        kwargs = {"truncation": True, "max_length": self.max_seq_length} \
            if self.max_seq_length else {}
        ids = st.tokenizer(texts, add_special_tokens=True, return_attention_mask=False,
                           return_token_type_ids=False, **kwargs)["input_ids"]
        return [len(i) for i in ids]

    def close(self) -> None:
        """Drop the model and give its memory back."""
        with self._lock:
            self._st = None
        _release(self.device)


def _open(resolved: ResolvedModel, device: str):
    """Load the SentenceTransformer for `resolved` on `device`, mapping failures to ProviderError."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    attempts = [True, False] if resolved.known.trust_remote_code else [False]
    first: Exception | None = None
    for trust in attempts:
        try:
            return SentenceTransformer(str(resolved.path), device=device, local_files_only=True,
                                       trust_remote_code=trust)
        except torch.OutOfMemoryError as exc:
            raise ResourceLimitExceeded(f"model {resolved.name!r} does not fit in the memory of "
                                        f"{device}") from exc
        except Exception as exc:  # noqa: BLE001 - model code raises anything; try 2 is the
            first = first or exc  # native transformers class (e.g. NomicBert) without remote code
            log.info("loading %s with trust_remote_code=%s failed: %s", resolved.name, trust, exc)
    raise ProviderError(f"could not load model {resolved.name!r} from {resolved.source}: "
                        f"{type(first).__name__}: {_first_line(first)}") from first


def _task_prompts(st, resolved: ResolvedModel) -> dict[str, str]:
    """Pick the query/document prefixes: the model's own prompts, else the known-model table."""
    own = {k: v for k, v in (getattr(st, "prompts", None) or {}).items() if v}
    prompts = {}
    for task, alias in (("query", "query"), ("document", "passage")):
        prompts[task] = own.get(task) or own.get(alias) or resolved.known.prompts.get(task, "")
    return prompts


def _release(device: str) -> None:
    """Collect garbage and empty the GPU cache after dropping a model."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _mb(n: int) -> int:
    """Round bytes up to whole MiB."""
    return -(-n // MB)


def _first_line(exc: BaseException | None) -> str:
    """Return the first line of an exception's message, shortened."""
    text = str(exc).strip().splitlines()[0] if exc and str(exc).strip() else ""
    return text[:300]
