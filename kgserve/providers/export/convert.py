"""Model conversions for the CPU backends: torch -> ONNX -> int8 (ONNX Runtime), ONNX -> OpenVINO IR.

Each function writes into a folder it is given and knows nothing about caching (kgserve.providers.
export owns that). The ONNX files follow the transformers.js layout (`onnx/model.onnx`,
`onnx/model_quantized.onnx` next to `config.json` and the tokenizer files), so the same folder can
be served to a browser. Heavy modules are imported inside the functions.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ONNX_MODEL = "onnx/model.onnx"
ONNX_QUANTIZED = "onnx/model_quantized.onnx"
OPENVINO_MODEL = "openvino/openvino_model.xml"
OPENVINO_QUANTIZED = "openvino/openvino_model_qint8.xml"
OUTPUT = "last_hidden_state"
OPSET = 17
# Files a tokenizer or a browser runtime reads next to the model (copied when present).
SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt", "merges.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
              "added_tokens.json")


class UnsupportedModel(Exception):
    """The model's architecture or module layout cannot be exported; message says why."""


def copy_side_files(source: Path, dest: Path) -> None:
    """Copy the config and tokenizer files of `source` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link `source` to `dest` (same disk: no second copy of a large graph), else copy it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def input_names(transformer, tokenizer) -> list[str]:
    """The tokenizer outputs the transformer's forward() accepts, in the tokenizer's order."""
    accepted = inspect.signature(transformer.forward).parameters
    names = [n for n in tokenizer.model_input_names if n in accepted]
    if "input_ids" not in names or "attention_mask" not in names:
        raise UnsupportedModel(f"{type(transformer).__name__} does not take input_ids and "
                               "attention_mask from its tokenizer")
    return names


def export_onnx(transformer, tokenizer, dest: Path) -> Path:
    """Export `transformer` (a transformers PreTrainedModel) to `dest`/onnx/model.onnx.

    Inputs are the tokenizer's (input_ids, attention_mask, token_type_ids when the model takes
    them) with dynamic batch and sequence axes; the one output is the last hidden state, pooled
    outside the graph as sentence-transformers does.
    """
    import torch

    names = input_names(transformer, tokenizer)

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors))).last_hidden_state

    sample = tokenizer(["an example text", "and a second, longer example text"], padding=True,
                       return_tensors="pt")
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in [*names, OUTPUT]}
    target = dest / ONNX_MODEL
    target.parent.mkdir(parents=True, exist_ok=True)
    module = LastHiddenState(transformer).eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about constant shapes we make dynamic
            torch.onnx.export(module, tuple(sample[n] for n in names), str(target), dynamo=False,
                              input_names=names, output_names=[OUTPUT], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True)
    except Exception as exc:  # the tracer raises anything for code it cannot follow
        raise UnsupportedModel(f"the ONNX exporter cannot trace {type(transformer).__name__}: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    return target


# The feed-forward down projections (BERT-style `output.dense`, nomic's `fc2`, llama-style
# `down_proj`) see the widest activation ranges: int8 there costs the most accuracy for the least
# work saved, so they stay float32 (figures in the benchmark docs).
KEEP_FLOAT = (r".*layer\.\d+/output/dense/MatMul.*", r".*/fc2/MatMul.*", r".*/down_proj/MatMul.*")


def _kept_float(names: Iterable[str]) -> list[str]:
    """The node names the int8 recipes leave in float32."""
    import re

    return [n for n in names if any(re.fullmatch(p, n) for p in KEEP_FLOAT)]


def has_vnni() -> bool:
    """Say whether this CPU has int8 dot-product instructions (VNNI)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def onnx_int8_recipe() -> dict[str, object]:
    """The dynamic quantization settings for this CPU (part of the cache key).

    Per-channel weights: one scale per output channel keeps the vectors much closer to float32's
    than one scale per tensor. Without VNNI, signed int8 weights can saturate the AVX2 u8*s8
    instruction, so unsigned weights are used there (ONNX Runtime's own advice).
    """
    return {"per_channel": True, "weight_type": "QInt8" if has_vnni() else "QUInt8",
            "keep_float": list(KEEP_FLOAT)}


def quantize_onnx(source: Path, target: Path) -> Path:
    """Write a dynamically int8-quantized copy of the ONNX model `source` to `target`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    recipe = onnx_int8_recipe()
    graph = onnx.load(str(source), load_external_data=False).graph
    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(source), str(target), per_channel=bool(recipe["per_channel"]),
                     weight_type=getattr(QuantType, str(recipe["weight_type"])),
                     nodes_to_exclude=_kept_float(n.name for n in graph.node))
    return target


def onnx_to_openvino(source: Path, target: Path) -> Path:
    """Convert the ONNX model `source` to OpenVINO IR at `target` (.xml and .bin)."""
    import openvino as ov

    target.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Core().read_model(str(source)), str(target), compress_to_fp16=False)
    return target


def quantize_openvino(source: Path, target: Path, features: Iterable[dict[str, np.ndarray]],
                      samples: int) -> Path:
    """Write an OpenVINO static int8 copy of IR `source`, calibrated on `features` (NNCF).

    Asymmetric activations (MIXED preset) and the feed-forward down projections in float32.
    """
    import nncf
    import openvino as ov

    from ...logs import quiet_nncf

    quiet_nncf()
    model = ov.Core().read_model(str(source))
    keep = _kept_float(op.get_friendly_name() for op in model.get_ops())
    quantized = nncf.quantize(model, nncf.Dataset(list(features)), subset_size=samples,
                              model_type=nncf.ModelType.TRANSFORMER,
                              preset=nncf.QuantizationPreset.MIXED,
                              ignored_scope=nncf.IgnoredScope(names=keep, validate=False))
    target.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(target), compress_to_fp16=False)
    return target
