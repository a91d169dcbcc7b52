"""`encoding_format`: how vectors travel in a response.

`float` (a JSON list) and `base64` (little-endian float32) are OpenAI's. `int8`, `uint8`,
`binary` and `ubinary` are kgserve's compact extensions with sentence-transformers'
`quantize_embeddings` semantics, sent as base64 of the bytes (layout in README.md):
- int8/uint8: one byte per dimension; dimension j's calibration range [lo_j, hi_j] is cut into 255
  steps, q = clip(floor((x - lo_j) / step_j), 0, 255) as uint8, minus 128 for int8.
- binary/ubinary: the signs (x > 0), 8 dimensions per byte, first dimension in the highest bit
  (numpy.packbits), zero bits padding the last byte; ubinary as is, binary minus 128 (int8).
The ranges come from the shipped calibration set (kgserve/providers/export/data/calibration_texts.txt),
embedded by the served model at the requested `dimensions` (see ServedProvider.ranges).
"""

from __future__ import annotations

import base64

import numpy as np

OPENAI_FORMATS = ("float", "base64")
COMPACT_FORMATS = ("int8", "uint8", "binary", "ubinary")
FORMATS = OPENAI_FORMATS + COMPACT_FORMATS
CALIBRATED = ("int8", "uint8")


def ranges_of(calibration: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) of calibration vectors, shape (2, d)."""
    calibration = np.asarray(calibration, dtype=np.float32)
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0)))


def quantize(vectors: np.ndarray, fmt: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Quantize float vectors (n, d) like sentence_transformers.quantize_embeddings does."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if fmt in CALIBRATED:
        ranges = np.asarray(ranges, dtype=np.float32)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        q = np.clip(np.floor((vectors - starts) / steps), 0, 255)
        return q.astype(np.uint8) if fmt == "uint8" else (q - 128).astype(np.int8)
    packed = np.packbits(vectors > 0, axis=-1)
    if fmt == "ubinary":
        return packed
    if fmt == "binary":
        return (packed.astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"not a compact encoding: {fmt!r}")


def wire(vectors: np.ndarray, fmt: str, ranges: np.ndarray | None = None) -> list | np.ndarray:
    """Each vector as it goes into the response's `embedding` for `fmt`: float rows are float64
    arrays holding the float32 values (JSON writes them as Python writes those floats)."""
    if fmt == "float":
        return vectors.astype("float32").astype(np.float64)
    if fmt == "base64":
        rows = vectors.astype("<f4")
    else:
        rows = quantize(vectors, fmt, ranges)
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
