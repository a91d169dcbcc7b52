"""The values a config and a request may take, and which backend, precision and device go together.

The one list of each: the request schemas, the CLI's choices and the providers derive theirs
from here. No heavy imports: the marshmallow schema checks these rules at the edge (422 naming
the field), and the local provider checks them again for rows that reach it another way.
"""

from __future__ import annotations

PROVIDERS = ("local", "openai")
BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("float32", "float16", "int8")
DEVICES = ("cpu", "cuda", "mps")  # kinds; cuda also as cuda:N
INPUT_TYPES = ("query", "document")
BACKEND_PRECISIONS = {"torch": ("float32", "float16"), "onnx": ("float32", "int8"),
                      "openvino": ("float32", "int8")}
FLOAT16_ON_CPU = ("precision float16 is refused on the CPU: torch computes half precision there "
                  "about 100x slower than float32, and the vectors would be no better. Use "
                  "float32, or backend onnx/openvino with precision int8 for a smaller, faster "
                  "model")


def problem(provider: str | None, backend: str | None, precision: str | None,
            device: str | None) -> tuple[str, str] | None:
    """Return (field, reason) for a combination that cannot work, else None.

    `device` None means "pick the best one"; the float16-on-CPU rule for that case is applied
    by the provider once it knows the device.
    """
    if provider != "local":
        if backend not in (None, "torch"):
            return "backend", f"backend {backend} applies to the local provider only"
        if precision == "int8":
            return "precision", ("precision int8 applies to the local provider's onnx and "
                                 "openvino backends only")
        return None
    backend = backend or "torch"
    if backend not in BACKENDS:
        return "backend", f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}"
    if precision not in BACKEND_PRECISIONS[backend]:
        if precision == "int8":
            return "precision", "precision int8 needs backend onnx or openvino"
        if precision == "float16":
            return "precision", (f"backend {backend} runs on the CPU, where float16 is not "
                                 "faster; use float32 or int8")
        return "precision", f"precision must be one of {', '.join(PRECISIONS)}"
    if backend != "torch" and device not in (None, "cpu"):
        return "device", f"backend {backend} runs on the CPU; set device cpu or leave it unset"
    if backend == "torch" and precision == "float16" and device == "cpu":
        return "precision", FLOAT16_ON_CPU
    return None
