"""Weight-only int8 for a download: the quantized ONNX model a browser loads (transformers.js).

The server's int8 recipes (convert.py) quantize activations too, to compute in int8, which moves
the vectors further from torch's than a browser's copy may go. A browser needs something else
from `onnx/model_quantized.onnx`: a download about four times smaller, with vectors that stay
interchangeable with the server's. So only the weights are stored in int8,
symmetric, with one float32 scale per block of BLOCK values along each matrix's input dimension;
each one is rebuilt by `Cast -> Mul -> Reshape` in the graph. Those nodes have constant inputs only,
so ONNX Runtime (native or WebAssembly) folds them into float32 weights once, when the session
is created: compute stays float32 and costs what the float model costs. Blockwise scales follow
the weights more closely than per-channel or per-tensor ones; the accuracy guard checks each
export on the probe set (figures in the benchmark docs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 32
MIN_VALUES = 1024  # smaller matrices (and every bias or norm vector) stay float32
RECIPE = {"method": "int8 weights (symmetric, blockwise), float32 compute", "block": BLOCK,
          "min_values": MIN_VALUES, "ops": ["MatMul:B", "Gather:data"]}


def quantize_weights(source: Path, target: Path, block: int = BLOCK) -> int:
    """Write `source` with int8 weights to `target`; return how many matrices were quantized.

    A float32 2-D initializer is quantized when every use is the weight of a MatMul (input 1,
    blocks run along its rows) or the table of a Gather (input 0, an embedding table: blocks run
    along each row).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, slot))
    added_inits, added_nodes = [], []
    for init in list(graph.initializer):
        kinds = set(uses.get(init.name, []))
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != 2 or not kinds \
                or not (kinds <= {("MatMul", 1)} or kinds <= {("Gather", 0)}):
            continue
        weights = numpy_helper.to_array(init)
        if weights.size < MIN_VALUES:
            continue
        table = ("Gather", 0) in kinds
        inits, nodes = _blockwise(init.name, weights.T if table else weights, block, table)
        graph.initializer.remove(init)
        added_inits += inits
        added_nodes += nodes
    graph.initializer.extend(added_inits)
    for node in reversed(added_nodes):  # before every consumer: the graph stays sorted
        graph.node.insert(0, node)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return len(added_inits) // 3


def _blockwise(name: str, matrix: np.ndarray, block: int, transposed: bool):
    """Initializers and nodes that rebuild `name` from int8 blocks along axis 0 of `matrix`."""
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = matrix.shape
    size = block if rows % block == 0 else rows  # odd sizes: one scale per column
    blocks = matrix.reshape(rows // size, size, cols)
    scale = np.maximum(np.abs(blocks).max(axis=1, keepdims=True) / 127.0,
                       np.float32(1e-30)).astype(np.float32)
    values = np.clip(np.rint(blocks / scale), -127, 127).astype(np.int8)
    q, s, shape = f"{name}.int8", f"{name}.scale", f"{name}.shape"
    casted, scaled, flat = f"{name}.float", f"{name}.scaled", f"{name}.rows"
    inits = [numpy_helper.from_array(values, q), numpy_helper.from_array(scale, s),
             numpy_helper.from_array(np.array([rows, cols], dtype=np.int64), shape)]
    nodes = [helper.make_node("Cast", [q], [casted], to=TensorProto.FLOAT, name=f"{name}/Cast"),
             helper.make_node("Mul", [casted, s], [scaled], name=f"{name}/Mul")]
    if transposed:
        nodes += [helper.make_node("Reshape", [scaled, shape], [flat], name=f"{name}/Reshape"),
                  helper.make_node("Transpose", [flat], [name], perm=[1, 0],
                                   name=f"{name}/Transpose")]
    else:
        nodes.append(helper.make_node("Reshape", [scaled, shape], [name], name=f"{name}/Reshape"))
    return inits, nodes
