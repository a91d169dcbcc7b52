"""Prepare an onnx or openvino backend for a loaded SentenceTransformer: export, open, guard."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..base import ProviderConfig, ProviderError, ResourceLimitExceeded
from ..resolve import ResolvedModel
from .cache import Entry, Exporter, ExportSpec
from .convert import UnsupportedModel, input_names
from .encoder import CpuEncoder, layout, open_session
from .guard import AccuracyRefused, GuardResult, bound_for, compare, reference_vectors
from .probes import calibration_texts, probe_texts

log = logging.getLogger(__name__)
MB = 1024 * 1024


class ExportUnsupported(ProviderError):
    """The model cannot run on the onnx/openvino backend (architecture, modules, remote code)."""

    code = "backend_not_supported"
    param = "backend"


@dataclass
class Prepared:
    """A ready CPU backend and the figures of its accuracy guard."""

    encoder: CpuEncoder
    guard: GuardResult
    entry: Entry


def prepare(cfg: ProviderConfig, resolved: ResolvedModel, st, max_seq_length: int | None,
            threads: int) -> Prepared:
    """Export (or find) `cfg.backend`/`cfg.precision` of `st`, open it, and run the guard."""
    spec = ExportSpec(cfg.backend, cfg.precision)
    bound = bound_for(cfg.precision)  # a bad KG_MIN_COSINE fails before any export
    try:
        shape = layout(st)
        exporter = Exporter(resolved.name, resolved.path,
                            load_torch=lambda: (st[0].auto_model, st.tokenizer),
                            calibration=lambda: calibration_features(st, max_seq_length))
        entry = exporter.ensure(spec)
    except UnsupportedModel as exc:
        raise ExportUnsupported(f"model {resolved.name!r} cannot run on the {cfg.backend} "
                                f"backend: {exc}; use backend torch") from exc
    if cfg.max_memory_mb is not None:
        need = graph_bytes(entry)
        if need > cfg.max_memory_mb * MB:
            raise ResourceLimitExceeded(
                f"the {cfg.backend} {cfg.precision} export of {resolved.name!r} takes about "
                f"{-(-need // MB)} MB, more than max_memory_mb={cfg.max_memory_mb}")
    session = open_session(cfg.backend, entry.model_path, threads)
    encoder = CpuEncoder(session, st.tokenizer, shape, max_seq_length)
    reference = reference_vectors(st, exporter.root, exporter.fingerprint, max_seq_length)
    candidate, _ = encoder.encode(list(probe_texts()), cfg.batch_size)
    result = compare(candidate, reference, cfg.embedding_dimensions, bound)
    if not result.passed:
        raise AccuracyRefused(
            f"the accuracy guard refused {cfg.backend} {cfg.precision} for {resolved.name!r}: "
            f"{result.describe()}. Use precision float32 or backend torch, or lower the bound "
            f"with KG_MIN_COSINE")
    return Prepared(encoder, result, entry)


def graph_bytes(entry: Entry) -> int:
    """The size of the graph files a session loads (.onnx, or .xml with its .bin)."""
    path = entry.model_path
    extra = path.with_suffix(".bin")
    return path.stat().st_size + (extra.stat().st_size if extra.suffix != path.suffix
                                  and extra.exists() else 0)


def calibration_features(st, max_seq_length: int | None) -> list[dict[str, np.ndarray]]:
    """The shipped calibration texts, tokenized one per sample (no padding) for the graph."""
    names = input_names(st[0].auto_model, st.tokenizer)
    kwargs = {"truncation": True, "max_length": max_seq_length} if max_seq_length else {}
    out = []
    for text in calibration_texts():
        enc = st.tokenizer([text], return_tensors="np", **kwargs)
        out.append({n: enc[n].astype(np.int64) for n in names})
    return out
