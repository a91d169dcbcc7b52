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
    Capabilities,
    EmbeddingProvider,
    Embeddings,
    ProviderConfig,
    ProviderError,
    ResourceLimitExceeded,
    TokenCounts,
    Tokenized,
)
from kgserve.providers.devices import model_threads, pick_device
from kgserve.providers.options import FLOAT16_ON_CPU, problem
from kgserve.providers.resolve import ResolvedModel, resolve_model, task_prompts

log = logging.getLogger(__name__)

MB = 1024 * 1024
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
_SKIP_DIRS = {"onnx", "openvino", ".git"}
# A token of ordinary text covers ~4 characters, rarely more than 16. Texts are cut to
# max_seq_length x this many characters before the tokenizer sees them: it tokenizes a whole text
# before truncating, so a huge text would cost far more CPU than the tokens the model reads.
CHARS_PER_TOKEN = 16


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
    found = problem(cfg.provider, cfg.backend, cfg.precision, cfg.device)
    if found and not (found[1] == FLOAT16_ON_CPU and cfg.id is not None):  # see load()
        raise _field_error(*found)
    for name in ("embedding_dimensions", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ProviderError(f"{name} must be at least 1")
    for name in ("max_memory_mb", "num_threads", "max_seq_length"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ProviderError(f"{name} must be at least 1 when set")


def _field_error(field: str, message: str) -> ProviderError:
    err = ProviderError(message)
    err.param = field
    return err


class LocalProvider(EmbeddingProvider):
    """A sentence-transformers model in this process; embed() is serialised by a lock."""

    capabilities = Capabilities(batched=True, counts_tokens=True, cacheable=True)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.device = config.device or "auto"
        self.resolved: ResolvedModel | None = None
        self.native_dimensions: int | None = None
        self.max_seq_length: int | None = None
        self.prompts: dict[str, str] = {}
        self.guard = None  # GuardResult of an onnx/openvino backend
        self.export_path: Path | None = None
        self._st = None  # the SentenceTransformer (torch backend)
        self._cpu = None  # the CpuEncoder (onnx/openvino backends)
        self._tokenizer = None
        self._default_prompt = ""
        self._threads = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        """Resolve, check limits, load (export and guard for onnx/openvino), apply settings, warm.

        Nothing process-wide changes here: torch's thread count is set per call (and put back
        after the warm-up), ONNX Runtime and OpenVINO threads live in their own sessions.
        """
        cfg = self.config
        started = time.perf_counter()
        _check_config(cfg)
        resolved = resolve_model(cfg.model_name)
        device = pick_device(cfg.device)
        if cfg.precision == "float16" and device == "cpu" and cfg.backend == "torch":
            if cfg.id is None:  # a new config: refuse; a stored one keeps its old meaning
                raise _field_error("precision", FLOAT16_ON_CPU)
            log.warning("config %s asks for float16 on the CPU: computing in float32 and "
                        "returning float16 vectors (%s)", cfg.id, FLOAT16_ON_CPU)
        half = cfg.precision == "float16" and device != "cpu"
        if cfg.max_memory_mb is not None and cfg.backend == "torch":
            need = weight_bytes_on_disk(resolved.path) // (2 if half else 1)
            if need > cfg.max_memory_mb * MB:
                raise ResourceLimitExceeded(
                    f"model {resolved.name!r} needs about {_mb(need)} MB for its weights, more "
                    f"than max_memory_mb={cfg.max_memory_mb}")
        previous_threads = torch.get_num_threads()
        self._threads = model_threads(cfg.num_threads)
        st = open_sentence_transformer(resolved, device, remote_code=cfg.backend == "torch")
        try:
            self._configure(st, resolved, half)
            if cfg.backend == "torch":
                self._st = st
            else:
                self._prepare_cpu(st, resolved)
            st = None  # the onnx/openvino backends keep only the tokenizer
            self._encode(["warm up"], None)
        except BaseException:
            self._st = self._cpu = None
            st = None
            _release(device)
            raise
        finally:
            torch.set_num_threads(previous_threads)
        self.resolved = resolved
        self.device = device
        self.load_seconds = time.perf_counter() - started
        guard = f"; guard {self.guard.describe()}" if self.guard else ""
        log.info("loaded %s from %s on %s (%d-d, backend %s, precision %s) in %.2fs%s",
                 resolved.name, resolved.source, device, self.dimensions, cfg.backend,
                 cfg.precision, self.load_seconds, guard)

    def _prepare_cpu(self, st, resolved: ResolvedModel) -> None:
        """Export (or find) the onnx/openvino model, open it and run the accuracy guard."""
        from .export.backend import prepare

        ready = prepare(self.config, resolved, st, self.max_seq_length, self._threads)
        self._cpu, self.guard, self.export_path = ready.encoder, ready.guard, ready.entry.path

    def _configure(self, st, resolved: ResolvedModel, half: bool) -> None:
        """Apply precision, memory limit, dimensions, sequence length and task prompts."""
        cfg = self.config
        if half:
            st.half()
        if cfg.max_memory_mb is not None and cfg.backend == "torch":
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
        default = getattr(st, "default_prompt_name", None)
        self._default_prompt = (st.prompts or {}).get(default, "") if default else ""
        self._tokenizer = st.tokenizer

    @property
    def threads(self) -> int:
        """The intra-op threads this model's calls use (see devices.model_threads)."""
        return self._threads

    def embed(self, texts: list[str], input_type: str | None = None,
              dimensions: int | None = None) -> Embeddings:
        """Embed `texts` in one model call; truncate to `dimensions` and re-normalise."""
        self.check_request(texts, input_type, dimensions)
        if not texts:
            return Embeddings(np.zeros((0, dimensions or self.dimensions), dtype=self._dtype()), 0)
        tokens = TokenCounts.of(self.token_lengths(texts, input_type), self.max_tokens)
        vectors, _ = self._encode(texts, input_type)
        return Embeddings.counted(self._shape(vectors, dimensions), tokens)

    def encode(self, texts: list[str], input_type: str | None = None,
               dimensions: int | None = None, rows: list | None = None) -> np.ndarray:
        """Return the vectors of checked `texts`: one model call, truncated, re-normalised;
        `rows` are their tokenized() rows (onnx/openvino: not tokenized again)."""
        return self._shape(self._encode(texts, input_type, rows)[0], dimensions)

    def _shape(self, vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
        """Truncate to `dimensions`, re-normalise if configured, cast to the output type."""
        vectors = vectors[:, :dimensions or self.dimensions]
        if self.config.normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(vectors, dtype=self._dtype())

    def _encode(self, texts: list[str], input_type: str | None, rows: list | None = None
                ) -> tuple[np.ndarray, list[int] | None]:
        """Run the model under the lock; return float32 vectors, and the token counts when the
        run gives them for free (the onnx/openvino runtimes read them off the attention mask)."""
        st, cpu = self._st, self._cpu
        if st is None and cpu is None:
            raise ProviderError(f"model {self.model!r} is not loaded")
        prompt = self._prompt(input_type)
        texts = self._clip(texts)
        with self._lock:
            if cpu is not None:
                return cpu.encode([prompt + t for t in texts] if prompt else texts,
                                  self.config.batch_size, rows)
            if torch.get_num_threads() != self._threads:  # this config's threads, per call
                torch.set_num_threads(self._threads)
            out = st.encode(texts, prompt=prompt, batch_size=self.config.batch_size,
                            convert_to_numpy=True, normalize_embeddings=False,
                            show_progress_bar=False)
        return np.asarray(out, dtype=np.float32), None

    def _prompt(self, input_type: str | None) -> str | None:
        """Return the text prepended for `input_type` (None: the model's default, if any)."""
        if input_type is not None:
            return self.prompts.get(input_type, "")
        return self._default_prompt

    @property
    def max_tokens(self) -> int | None:
        """The model's max_seq_length (the config's, when lower)."""
        return self.max_seq_length

    def tokenize(self, texts: list[str], input_type: str | None = None) -> list[list[int]]:
        """Return each text's token ids as the model would see them before truncation: task
        prefix and special tokens included."""
        if self._st is None and self._cpu is None:
            raise ProviderError(f"model {self.model!r} is not loaded")
        prompt = self._prompt(input_type)
        if prompt:
            texts = [prompt + t for t in texts]
        with self._lock:  # a fast tokenizer is not safe to share between threads
            return self._tokenizer(texts, add_special_tokens=True, return_attention_mask=False,
                                   return_token_type_ids=False, verbose=False)["input_ids"]

    def token_lengths(self, texts: list[str], input_type: str | None = None) -> list[int]:
        """Each text's token count before truncation, counted on the text cut to what the model
        can read (see _clip), so a 7 MB text costs no more tokenizing than one at the limit. A
        text that had to be cut counts as longer than the limit, whatever its cut part holds."""
        clipped = self._clip(texts)
        return self._counted(texts, clipped, [len(ids) for ids in self.tokenize(clipped,
                                                                                 input_type)])

    def tokenized(self, texts: list[str], input_type: str | None = None) -> Tokenized:
        """Count as token_lengths does; onnx/openvino keep the ids for encode(), which then
        feeds them to the session instead of tokenizing the texts a second time."""
        cpu = self._cpu
        if cpu is None:
            return Tokenized(self.token_lengths(texts, input_type))
        prompt = self._prompt(input_type)
        clipped = self._clip(texts)
        with self._lock:
            rows = cpu.rows([prompt + t for t in clipped] if prompt else clipped)
        return Tokenized(self._counted(texts, clipped, [len(r["input_ids"]) for r in rows]), rows)

    def _counted(self, texts: list[str], clipped: list[str], lengths: list[int]) -> list[int]:
        """Token counts of `texts` from those of their `clipped` forms (see token_lengths)."""
        limit = self.max_tokens
        if not limit:
            return lengths
        return [max(n, limit + 1) if len(c) < len(t) else n
                for n, c, t in zip(lengths, clipped, texts)]

    def _clip(self, texts: list[str]) -> list[str]:
        """Cut each text to what the model can read (max_seq_length x CHARS_PER_TOKEN characters),
        so a long text costs no more tokenizing than a text at the model's limit."""
        if not self.max_seq_length:
            return texts
        limit = self.max_seq_length * CHARS_PER_TOKEN
        return [t[:limit] if len(t) > limit else t for t in texts]

    def close(self) -> None:
        """Drop the model and give its memory back."""
        with self._lock:
            self._st, self._cpu = None, None
        _release(self.device)


def open_sentence_transformer(resolved: ResolvedModel, device: str, remote_code: bool = True):
    """Load the SentenceTransformer for `resolved` on `device`, mapping failures to ProviderError.

    Without `remote_code` (the onnx/openvino exports) a model that only loads with its own
    published code is refused: only architectures transformers ships can be exported.
    """
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    attempts = [True, False] if resolved.known.trust_remote_code and remote_code else [False]
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
    if not remote_code and resolved.known.trust_remote_code:
        raise _field_error("backend", (
            f"model {resolved.name!r} needs trust_remote_code (its own published code), which "
            f"the onnx and openvino exports do not run ({type(first).__name__}: "
            f"{_first_line(first)}); use backend torch"))
    raise ProviderError(f"could not load model {resolved.name!r} from {resolved.source}: "
                        f"{type(first).__name__}: {_first_line(first)}") from first


def _task_prompts(st, resolved: ResolvedModel) -> dict[str, str]:
    """Pick the query/document prefixes: the model's own prompts, else the known-model table."""
    return task_prompts(getattr(st, "prompts", None) or {}, resolved.known)


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
