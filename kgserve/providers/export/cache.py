"""ONNX / OpenVINO exports of a local model, cached on disk (KG_MODEL_CACHE) and made once.

An entry is a folder `<cache>/<model>/<backend>-<precision>-<key>/` holding the exported graph, the
model's config and tokenizer files, and `kgserve-export.json` (the manifest: what it was made
from and the size and sha256 of every file). The key covers the model's files, the backend, the
precision, the recipe and the versions of the libraries that made it.

Making one: take an exclusive flock on the entry's lock file (two gunicorn workers, or two
replicas sharing the disk, wait for each other; the kernel drops the lock of a crashed process),
look again, export into a hidden temporary folder, write the manifest last, fsync, then rename
the folder into place. A crash leaves only a `.tmp-*` folder, which no load ever reads and the
next exporter removes; an entry whose files do not match its manifest is moved aside and made
again. Entries derive from each other (ONNX float32 -> ONNX int8, -> OpenVINO float32 -> OpenVINO
int8, -> the browser's folder), so every conversion runs once per model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from kgmigrate.durable import (
    file_sha256,
    fsync_dir,
    fsync_tree,
    make_private,
    private_folder,
)

from . import convert, weights_int8

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout or a recipe changes: old entries are then never read
MANIFEST = "kgserve-export.json"
_SMALL = 1 << 20  # files up to this size are hashed whole in the model fingerprint
_IGNORED_DIRS = {"onnx", "openvino", ".git", ".cache"}
_LIBRARIES = {"onnx": ("torch", "transformers", "onnx"), "browser": ("torch", "transformers", "onnx"),
              "openvino": ("torch", "transformers", "onnx", "openvino", "nncf")}


@dataclass(frozen=True)
class ExportSpec:
    """What to export: backend 'onnx'|'openvino', precision 'float32'|'int8'.

    ('browser', 'int8') is the folder transformers.js loads: the ONNX float32 model (a hard link to
    that entry's) and `onnx/model_quantized.onnx` with int8 weights (weights_int8.py).
    """

    backend: str
    precision: str

    @property
    def model_file(self) -> str:
        """The graph's path inside an entry."""
        return {("onnx", "float32"): convert.ONNX_MODEL, ("onnx", "int8"): convert.ONNX_QUANTIZED,
                ("openvino", "float32"): convert.OPENVINO_MODEL,
                ("openvino", "int8"): convert.OPENVINO_QUANTIZED,
                ("browser", "int8"): convert.ONNX_QUANTIZED}[(self.backend, self.precision)]

    @property
    def parent(self) -> ExportSpec | None:
        """The entry this one is made from (None: made from the torch model)."""
        if self.backend in ("onnx", "browser"):
            return ExportSpec("onnx", "float32") if self.precision == "int8" else None
        return ExportSpec("openvino", "float32") if self.precision == "int8" \
            else ExportSpec("onnx", "float32")


def cache_root() -> Path:
    """KG_MODEL_CACHE, else $XDG_CACHE_HOME/kgserve/models (~/.cache/kgserve/models)."""
    if os.environ.get("KG_MODEL_CACHE"):
        return Path(os.environ["KG_MODEL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "kgserve" / "models"


def fingerprint(model_dir: Path) -> str:
    """Identify a model folder's contents without reading its weights.

    Every file's relative name, size and mtime, plus the whole content of small files (configs,
    tokenizers) and the target of symlinks (the Hugging Face cache links each file to a blob
    named by its content hash). Hashing the weights themselves would cost seconds per worker
    start for large models; a weight file replaced in place keeps neither its mtime nor, usually,
    its size, and any change here only costs a new export, never a wrong one from the cache.
    """
    digest = hashlib.sha256()
    for path in sorted(_model_files(model_dir)):
        stat = path.stat()
        rel = path.relative_to(model_dir).as_posix()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        if stat.st_size <= _SMALL:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _model_files(model_dir: Path) -> list[Path]:
    files = []
    for directory, subdirs, names in os.walk(model_dir, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in _IGNORED_DIRS]
        files += [Path(directory, n) for n in names if not n.startswith(".")]
    return files


def library_versions(backend: str) -> dict[str, str]:
    """The versions of the libraries that make (and so key) an export for `backend`."""
    found = {}
    for name in _LIBRARIES[backend]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def export_key(model_fingerprint: str, spec: ExportSpec) -> dict[str, Any]:
    """Everything an entry depends on (hashed into its name, kept in its manifest)."""
    recipe: dict[str, Any] = {"opset": convert.OPSET}
    if spec.backend == "browser":
        recipe["quantization"] = weights_int8.RECIPE
    elif spec.precision == "int8":
        recipe["quantization"] = convert.onnx_int8_recipe() if spec.backend == "onnx" \
            else {"method": "nncf static mixed", "keep_float": list(convert.KEEP_FLOAT),
                  "calibration": _calibration_digest()}
    return {"format": FORMAT, "model": model_fingerprint, "backend": spec.backend,
            "precision": spec.precision, "recipe": recipe,
            "versions": library_versions(spec.backend)}


def slug(name: str) -> str:
    """A folder name for a model name or path."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")).strip("-.")
    return text[-80:] or "model"


@dataclass(frozen=True)
class Entry:
    """A verified export on disk."""

    path: Path
    spec: ExportSpec
    key: str
    made: bool  # True when this call exported it

    @property
    def model_path(self) -> Path:
        return self.path / self.spec.model_file


class Exporter:
    """Finds or makes the entries of one model. `load_torch` loads (transformer, tokenizer)."""

    def __init__(self, name: str, model_dir: Path,
                 load_torch: Callable[[], tuple[Any, Any]],
                 calibration: Callable[[], list[dict[str, Any]]] | None = None,
                 root: Path | None = None) -> None:
        self.name, self.model_dir = name, model_dir
        self.load_torch, self.calibration = load_torch, calibration
        self.root = (root or cache_root()) / slug(name)
        self.fingerprint = fingerprint(model_dir)

    def key(self, spec: ExportSpec) -> tuple[str, dict[str, Any]]:
        """(short hex key, key document) of `spec` for this model."""
        doc = export_key(self.fingerprint, spec)
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20], doc

    def entry_dir(self, spec: ExportSpec) -> Path:
        return self.root / f"{spec.backend}-{spec.precision}-{self.key(spec)[0]}"

    def ensure(self, spec: ExportSpec) -> Entry:
        """Return a verified entry for `spec`, exporting it (once, under the lock) if needed."""
        key, doc = self.key(spec)
        final = self.entry_dir(spec)
        if verify(final, key):
            return Entry(final, spec, key, made=False)
        private_folder(self.root)
        with _locked(self.root / f".{final.name}.lock", final.name):
            if verify(final, key):  # another process made it while we waited
                return Entry(final, spec, key, made=False)
            if final.exists():
                log.warning("export cache entry %s does not match its manifest; making it again",
                            final)
                _remove(final, self.root)
            for stale in self.root.glob(f".tmp-{final.name}-*"):  # crashed exporters' leftovers
                shutil.rmtree(stale, ignore_errors=True)
            started = time.perf_counter()
            log.info("exporting %s to %s %s (once; cached in %s)", self.name, spec.backend,
                     spec.precision, final)
            tmp = self.root / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(mode=0o700)
            try:
                # Converters print progress bars; stdout belongs to the CLI's JSON answer.
                with contextlib.redirect_stdout(sys.stderr):
                    self._make(spec, tmp)
                write_manifest(tmp, key, doc, self.name)
                make_private(tmp)  # converters wrote with the umask's modes
                fsync_tree(tmp)
                os.rename(tmp, final)
                fsync_dir(self.root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            log.info("exported %s to %s %s in %.1fs", self.name, spec.backend, spec.precision,
                     time.perf_counter() - started)
        return Entry(final, spec, key, made=True)

    def _make(self, spec: ExportSpec, out: Path) -> None:
        """Run the conversion for `spec` into the empty folder `out`."""
        convert.copy_side_files(self.model_dir, out)
        parent = self.ensure(spec.parent) if spec.parent else None
        if parent is None:
            transformer, tokenizer = self.load_torch()
            convert.export_onnx(transformer, tokenizer, out)
        elif spec.backend == "browser":
            convert.link_or_copy(parent.model_path, out / convert.ONNX_MODEL)
            weights_int8.quantize_weights(parent.model_path, out / spec.model_file)
        elif spec.backend == "onnx":
            convert.quantize_onnx(parent.model_path, out / spec.model_file)
        elif spec.precision == "float32":
            convert.onnx_to_openvino(parent.model_path, out / spec.model_file)
        else:
            features = self.calibration() if self.calibration else []
            convert.quantize_openvino(parent.model_path, out / spec.model_file, features,
                                      len(features))


def write_manifest(folder: Path, key: str, doc: dict[str, Any], name: str) -> None:
    """Record every file of `folder` (size, sha256) and what the entry was made from."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    body = {"key": key, "model": name, **doc, "files": files,
            "created": datetime.now(UTC).isoformat(timespec="seconds")}
    (folder / MANIFEST).write_text(json.dumps(body, indent=1, sort_keys=True))


def verify(folder: Path, key: str) -> bool:
    """Say whether `folder` is a complete entry for `key`: manifest present, every file intact.

    Anything else is a corrupt entry, never an error: a manifest that is missing, torn, not a
    JSON object, names files outside the entry or with sizes and digests of the wrong type; an
    entry that others than its owner may write to.
    """
    files = read_manifest(folder, key)
    if not files:
        return False
    try:
        if _writable_by_others(folder) or _writable_by_others(folder / MANIFEST):
            return False
        for rel, want in files.items():
            path = folder / rel
            if not path.resolve().is_relative_to(folder.resolve()) or _writable_by_others(path) \
                    or path.stat().st_size != want["size"] or file_sha256(path) != want["sha256"]:
                return False
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return True


def _writable_by_others(path: Path) -> bool:
    """Say whether someone but the owner may change `path` (then its digest proves nothing:
    the manifest beside it could have been rewritten too)."""
    return bool(path.lstat().st_mode & 0o022)


def read_manifest(folder: Path, key: str) -> dict[str, Any]:
    """The `files` of `folder`'s manifest when it is one for `key`, else {}."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return {}
    files = manifest.get("files")
    return files if isinstance(files, dict) else {}


class _locked:
    """An exclusive flock on `path` for the duration of a with block."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what, self.fd = path, what, -1

    def __enter__(self) -> _locked:  # noqa: PYI034 - a private helper
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process exporting %s", self.what)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _remove(folder: Path, root: Path) -> None:
    """Move a bad entry out of the way first (one rename), then delete it."""
    trash = root / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _calibration_digest() -> str:
    from .probes import calibration_texts

    return hashlib.sha256("\n".join(calibration_texts()).encode()).hexdigest()[:16]
