"""The active local model in a browser (transformers.js): what a page must know, and its files.

`summary(row)` is the one place that decides `supports_browser` (GET /embedding/config). It reads
the model's small files only (modules.json, the pooling config, prompts, sequence length), never
the weights, and is cached per config. A local model can run in a browser when it is a
Transformer -> Pooling (-> Normalize) sentence-transformers model (the same rule as the onnx
backend), has a `tokenizer.json` (transformers.js reads no other tokenizer format) and its
weights fit a browser (under 2 GB); OpenAI's models never can.

`ensure(model)` makes the folder a page downloads (the export cache, spec
('browser', 'int8'): config, tokenizer, `onnx/model.onnx`, `onnx/model_quantized.onnx`), once per
model and library versions, then checks the quantized graph on the accuracy guard's probe set
against torch float32 at the config's dimensions (bound 0.99). Only a quantized graph that passes
is offered; otherwise pages load the float one. An export that fails is remembered beside the
cache entry, so every worker stops offering it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from kgmigrate.durable import atomic_write, stream_sha256

from ..providers.base import ProviderConfig, ProviderError
from ..providers.export.cache import MANIFEST, Exporter, ExportSpec, read_manifest
from ..providers.export.convert import ONNX_QUANTIZED, UnsupportedModel
from ..providers.export.encoder import check_layout
from ..providers.resolve import resolve_model, task_prompts
from ..threads import default_threads

log = logging.getLogger(__name__)

SPEC = ExportSpec("browser", "int8")
INT8_BOUND = 0.99  # min cosine to torch float32 over the probe set for the quantized graph
MAX_WEIGHT_BYTES = 2 * 1024**3  # a browser's WebAssembly memory cannot hold much more
NEEDED = ("config.json", "tokenizer.json", "tokenizer_config.json")
URL_PREFIX = "/browser/models/"


class NotForBrowser(Exception):
    """The active config cannot run in a browser; the message says why."""


class ExportChanged(Exception):
    """A file of the export no longer holds the bytes its manifest (and so its ETag) names."""


@dataclass(frozen=True)
class BrowserModel:
    """What a page needs to compute the server's vectors for one config."""

    model_id: str  # <model name>.<export key>: a new id whenever the files would differ
    name: str
    folder: Path  # the model on disk
    pooling: str
    model_normalize: bool  # the model ends with a Normalize module (before truncation)
    prefixes: dict[str, str]
    default_prefix: str
    max_seq_length: int | None
    dimensions: int
    normalize: bool  # the config's normalize_embeddings (after truncation)
    exporter: Exporter = field(compare=False, repr=False)

    @cached_property
    def entry(self) -> Path:
        return self.exporter.entry_dir(SPEC)

    @property
    def accuracy_file(self) -> Path:
        return self.entry.with_name(f"{self.entry.name}.accuracy-{self.dimensions}-"
                                    f"{self.max_seq_length}.json")

    @property
    def failure_file(self) -> Path:
        return self.entry.with_name(f"{self.entry.name}.failed.json")

    def accuracy(self) -> dict[str, Any] | None:
        """The guard's figures for the quantized graph at these dimensions, once measured."""
        return _read_json(self.accuracy_file)

    def public(self) -> dict[str, Any]:
        """The `browser` object of GET /embedding/config."""
        accuracy = self.accuracy()
        return {"model_url": f"{URL_PREFIX}{self.model_id}/",
                "quantized": accuracy is None or bool(accuracy.get("passed")),
                "prefixes": dict(self.prefixes), "dimensions": self.dimensions,
                "default_prefix": self.default_prefix, "pooling": self.pooling,
                "model_normalize": self.model_normalize, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length, "model_id": self.model_id,
                "exported": self.entry.is_dir(), "accuracy": accuracy}


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """`supports_browser` and `browser` for GET /embedding/config (and why not, when not)."""
    try:
        model = describe(row)
    except NotForBrowser as exc:
        return {"supports_browser": False, "browser": None, "browser_unavailable": str(exc)}
    return {"supports_browser": True, "browser": model.public()}


def describe(row: dict[str, Any], retry: bool = False) -> BrowserModel:
    """The BrowserModel of config `row`, or NotForBrowser with the reason.

    An export that failed before is not offered again, unless `retry` (an operator's command).
    """
    cfg = ProviderConfig.from_row(row)
    model = _describe(cfg.provider, cfg.model_name, cfg.embedding_dimensions,
                      cfg.max_seq_length, cfg.normalize_embeddings, row.get("id"))
    if retry:
        model.failure_file.unlink(missing_ok=True)
    failed = _read_json(model.failure_file)
    if failed:
        raise NotForBrowser(failed.get("reason") or "the browser export failed")
    return model


def prepare(row: dict[str, Any]) -> dict[str, Any]:
    """Make the browser export of config `row` now, so no page waits for it (`make run`)."""
    model = describe(row, retry=True)
    export = ensure(model)
    return {"model_id": model.model_id, "model_url": f"{URL_PREFIX}{model.model_id}/",
            "folder": str(export.folder), "quantized": export.quantized,
            "accuracy": export.accuracy}


@lru_cache(maxsize=32)
def _describe(provider: str, name: str, dims: int, max_seq_length: int | None, normalize: bool,
              config_id: int | None) -> BrowserModel:
    """Read the model's small files (cached per config: its files do not change under it)."""
    if provider != "local":
        raise NotForBrowser(f"the {provider} provider computes vectors with a secret key on "
                            "its own servers; only local models run in a browser")
    try:
        resolved = resolve_model(name)
    except ProviderError as exc:
        raise NotForBrowser(str(exc)) from None
    folder = resolved.path
    missing = [n for n in NEEDED if not (folder / n).is_file()]
    if missing:
        raise NotForBrowser(f"model {name!r} has no {', '.join(missing)}; transformers.js "
                            "needs a fast tokenizer's tokenizer.json and its config")
    from ..providers.local import weight_bytes_on_disk

    if weight_bytes_on_disk(folder) > MAX_WEIGHT_BYTES:
        raise NotForBrowser(f"model {name!r} has more than 2 GB of weights, too large for a "
                            "browser")
    pooling, model_normalize = _layout(folder, name)
    st_config = _read_json(folder / "config_sentence_transformers.json") or {}
    own = st_config.get("prompts") or {}
    default_name = st_config.get("default_prompt_name")
    limits = [n for n in (max_seq_length, _max_seq_length(folder)) if n]
    exporter = Exporter(resolved.name, folder, load_torch=lambda: None)  # names entries only
    return BrowserModel(
        model_id=f"{_id_part(resolved.name)}.{exporter.key(SPEC)[0][:16]}", name=resolved.name,
        folder=folder, pooling=pooling, model_normalize=model_normalize,
        prefixes=task_prompts(own, resolved.known),
        default_prefix=own.get(default_name, "") if default_name else "",
        max_seq_length=min(limits) if limits else None, dimensions=dims, normalize=normalize,
        exporter=exporter)


def _layout(folder: Path, name: str) -> tuple[str, bool]:
    """Pooling mode and Normalize from modules.json and the pooling config (ST's own reader)."""
    modules = _read_json(folder / "modules.json", list)
    if not isinstance(modules, list):
        raise NotForBrowser(f"model {name!r} is not a sentence-transformers model (no "
                            "modules.json)")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    pooling: dict[str, Any] = {}
    if len(modules) > 1 and kinds[1] == "Pooling":
        from sentence_transformers.sentence_transformer.modules import Pooling

        pooling = Pooling.load_config(str(folder), subfolder=modules[1].get("path", ""))
    try:
        shape = check_layout(kinds, pooling.get("pooling_mode", "mean"),
                             pooling.get("include_prompt", True),
                             pooling.get("embedding_dimension", 0))
    except UnsupportedModel as exc:
        raise NotForBrowser(f"model {name!r} cannot run in a browser: {exc}") from None
    return shape.pooling, shape.normalize


def _max_seq_length(folder: Path) -> int | None:
    """sentence-transformers' limit: its own config, else the tokenizer's capped by positions."""
    st = _read_json(folder / "sentence_bert_config.json") or {}
    if st.get("max_seq_length"):
        return int(st["max_seq_length"])
    tokenizer = (_read_json(folder / "tokenizer_config.json") or {}).get("model_max_length")
    positions = (_read_json(folder / "config.json") or {}).get("max_position_embeddings")
    limits = [int(n) for n in (tokenizer, positions) if isinstance(n, (int, float)) and n > 0
              and n < 10**9]  # transformers writes a huge number for "no limit"
    return min(limits) if limits else None


def _id_part(name: str) -> str:
    """The model's last name component in the characters a transformers.js model id allows."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.rstrip("/").rsplit("/", 1)[-1])
    text = re.sub(r"([-.])[-.]+", r"\1", text).strip("-.")
    return text[:60] or "model"


class _Torch:
    """The SentenceTransformer, loaded on the CPU when the export or the guard first needs it."""

    def __init__(self, name: str) -> None:
        self.name, self.st = name, None

    def __call__(self):
        if self.st is None:
            from ..providers.local import open_sentence_transformer

            self.st = open_sentence_transformer(resolve_model(self.name), "cpu", remote_code=False)
        return self.st


@dataclass(frozen=True)
class Export:
    """A verified browser export: its folder, its files (size, sha256) and the guard's verdict."""

    folder: Path
    files: dict[str, dict[str, Any]]
    quantized: bool  # the quantized graph passed the guard: pages may load it
    accuracy: dict[str, Any]
    # name -> identity of the file when its bytes were last hashed and found right
    verified: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    def file(self, name: str) -> dict[str, Any] | None:
        """The size and sha256 of `name` when it is a file of the export (the manifest is not)."""
        return None if name == MANIFEST else self.files.get(name)

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]:
        """Open file `name` to send it: (file, its stat); its bytes are the ones the manifest's
        sha256 names, or ExportChanged.

        A file is hashed on its first open in this process and whenever its identity (device,
        inode, size, mtime and ctime in ns) is no longer the one hashed; what is hashed is the
        open file, so what was checked is what is sent.
        """
        want = self.files[name]
        fh = open(self.folder / name, "rb")  # the response closes it
        try:
            stat = os.fstat(fh.fileno())
            identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
                        stat.st_ctime_ns)
            if self.verified.get(name) != identity:
                if stat.st_size != want["size"] or stream_sha256(fh) != want["sha256"]:
                    raise ExportChanged(f"{self.folder / name} changed on disk after it was "
                                        "exported")
                fh.seek(0)
                self.verified[name] = identity
        except BaseException:
            fh.close()
            raise
        return fh, stat

    def withheld(self, name: str) -> bool:
        """Say whether `name` is the quantized graph and the guard refused it (pages then load
        the float graph)."""
        return name == ONNX_QUANTIZED and not self.quantized


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_ready: dict[tuple[str, int, int | None], Export] = {}


def ensure(model: BrowserModel, again: bool = False) -> Export:
    """The verified export of `model`, made (and its quantized graph guarded) if needed.

    Verified once per process, later calls answer from memory (Export.open checks each file it
    sends); `again` verifies the export on disk anew, and makes it again when it is damaged.
    """
    key = (model.model_id, model.dimensions, model.max_seq_length)
    if key in _ready and not again:
        return _ready[key]
    with _locks_guard:
        lock = _locks.setdefault(model.model_id, threading.Lock())
    with lock:  # one export per process; export.py's flock makes it one per machine
        if again:
            _ready.pop(key, None)
        if key in _ready:
            return _ready[key]
        torch_model = _Torch(model.name)
        exporter = Exporter(model.name, model.folder,
                            load_torch=lambda: (torch_model()[0].auto_model,
                                                torch_model().tokenizer))
        try:
            entry = exporter.ensure(SPEC)
            if model.accuracy() is None:
                _write_json(model.accuracy_file, _guard(model, entry.path, torch_model()))
        except (UnsupportedModel, ProviderError) as exc:
            reason = f"model {model.name!r} cannot be exported for a browser: {exc}"
            _write_json(model.failure_file, {"reason": reason})
            raise NotForBrowser(reason) from exc
        accuracy = model.accuracy() or {}
        _ready[key] = Export(entry.path, read_manifest(entry.path, entry.key),
                             bool(accuracy.get("passed")), accuracy)
        return _ready[key]


def _guard(model: BrowserModel, folder: Path, st) -> dict[str, Any]:
    """The quantized graph on the probe set against torch float32, at the config's dimensions."""
    from ..providers.export.encoder import CpuEncoder, Layout, open_session
    from ..providers.export.guard import compare, reference_vectors
    from ..providers.export.probes import probe_texts

    reference = reference_vectors(st, model.exporter.root, model.exporter.fingerprint,
                                  model.max_seq_length)
    shape = Layout(model.pooling, model.model_normalize, reference.shape[1])
    session = open_session("onnx", folder / ONNX_QUANTIZED, default_threads())
    vectors, _ = CpuEncoder(session, st.tokenizer, shape, model.max_seq_length).encode(
        list(probe_texts()), 8)
    result = compare(vectors, reference, model.dimensions, INT8_BOUND)
    log.info("browser export of %s: quantized graph %s", model.name, result.describe())
    return {**asdict(result), "passed": result.passed}


def _read_json(path: Path, kind: type = dict) -> Any:
    """The JSON value in `path` when it is a `kind`, else None (missing, torn or another type)."""
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, kind) else None


def _write_json(path: Path, body: dict[str, Any]) -> None:
    """Write durably: readers in other workers see the old file, none, or the whole new one."""
    atomic_write(path, json.dumps(body, indent=1, sort_keys=True).encode("utf-8"))
