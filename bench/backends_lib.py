"""Helpers for the backend matrix of bench_serve.py: raw encode per backend, fastembed, cosines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench import serve_lib as lib

MATRIX = (("torch", "float32"), ("onnx", "float32"), ("onnx", "int8"),
          ("openvino", "float32"), ("openvino", "int8"))


def reference(folder: Path, texts: list[str]) -> np.ndarray:
    """torch float32 sentence-transformers vectors of `texts` (normalised)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float64)


def min_cosine(vectors: list[list[float]] | np.ndarray, ref: np.ndarray) -> float:
    """The lowest row-wise cosine between `vectors` and `ref`."""
    a = np.asarray(vectors, dtype=np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    return float((a * ref).sum(1).min())


def served_min_cosine(url: str, model: str, texts: list[str], ref: np.ndarray) -> float | None:
    """Embed `texts` through an OpenAI-style endpoint and compare with `ref`."""
    code, body = lib.http("POST", url, {"input": texts, "model": model}, timeout=600)
    if code != 200:
        return None
    rows = sorted(body["data"], key=lambda d: d["index"])
    return min_cosine([r["embedding"] for r in rows], ref)


_RAW_KG = """
import json, sys, time
from kgserve.providers import ProviderConfig, build_provider
folder, dims, backend, precision, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], \\
    sys.argv[4], float(sys.argv[5])
texts = json.loads(sys.stdin.read())
p = build_provider(ProviderConfig("local", folder, dims, precision=precision, backend=backend,
                                  device="cpu", batch_size=32))
p.load()
def encode(chunk, size):
    p.embed(chunk)
""" + lib.RATE + """
print(json.dumps({"one": rate(1), "batch32": rate(32)}))
"""


def raw_kgserve(folder: Path, dims: int, backend: str, precision: str, sample: list[str],
                seconds: float) -> dict[str, float] | str:
    """kgserve's provider in one process (no server): texts/s one per call and 32 per call."""
    out = subprocess.run([sys.executable, "-c", _RAW_KG, str(folder), str(dims), backend,
                          precision, str(seconds)], input=json.dumps(sample), capture_output=True,
                         text=True, check=False, cwd=lib.REPO,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or ["failed"])[-1][:200]
    return json.loads(out.stdout.strip().splitlines()[-1])


_FASTEMBED = """
import json, sys, time
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
folder, dims, seconds, model_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
data = json.loads(sys.stdin.read())
TextEmbedding.add_custom_model("kgbench/model", pooling=PoolingType.MEAN, normalization=True,
                               sources=ModelSource(hf="kgbench/model"), dim=dims,
                               model_file=model_file)
m = TextEmbedding("kgbench/model", specific_model_path=folder, threads=2)
texts = data["sample"]
def encode(chunk, size):
    list(m.embed(chunk, batch_size=size))
""" + lib.RATE + """
probes = [v.tolist() for v in m.embed(data["probes"], batch_size=8)]
print(json.dumps({"one": rate(1), "batch32": rate(32), "probes": probes}))
"""


def fastembed(python: str, export_dir: Path, model_file: str, dims: int, sample: list[str],
              probes: list[str], seconds: float) -> dict | str:
    """fastembed on kgserve's own exported ONNX folder (raw library calls, 2 threads)."""
    if not Path(python).is_file():
        return "not installed"
    out = subprocess.run([python, "-c", _FASTEMBED, str(export_dir), str(dims), str(seconds),
                          model_file], input=json.dumps({"sample": sample, "probes": probes}),
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        return "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200]
    return json.loads(out.stdout.strip().splitlines()[-1])

