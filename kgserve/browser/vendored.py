"""The browser runtime served under /browser/vendor/, shipped inside the package.

transformers.js as one ES module with ONNX Runtime Web inside, and the WebAssembly build this
ONNX Runtime Web loads (the asyncify one, what transformers.js picks for the CPU), from the npm
packages pinned in package-lock.json. `make install` runs `npm ci` into node_modules/, then this
file as a script, which copies them into vendor/: package data, so a wheel carries them and
`pip install` serves the browser page without npm. Standard library only (it runs before the
virtual environment has kgserve's dependencies).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDER = HERE / "vendor"
NODE_MODULES = HERE / "node_modules"
# Name served under /browser/vendor/ -> path inside node_modules.
FILES = {
    "transformers.min.js": "@huggingface/transformers/dist/transformers.min.js",
    "ort-wasm-simd-threaded.asyncify.mjs": "onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm":
        "onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm",
}


def copy(node_modules: Path = NODE_MODULES, folder: Path = FOLDER) -> list[Path]:
    """Copy FILES from `node_modules` into `folder`; SystemExit naming what is missing."""
    missing = [rel for rel in FILES.values() if not (node_modules / rel).is_file()]
    if missing:
        raise SystemExit(f"not in {node_modules}: {', '.join(missing)}; run "
                         f"`npm ci --prefix {HERE}` first")
    folder.mkdir(exist_ok=True)
    copied = []
    for name, rel in FILES.items():
        tmp = folder / f".{name}.tmp"
        shutil.copyfile(node_modules / rel, tmp)
        tmp.replace(folder / name)  # a server reading it sees the old file or the new one
        copied.append(folder / name)
    return copied


if __name__ == "__main__":
    done = copy()
    print(f"copied {len(done)} browser runtime files into {FOLDER}", file=sys.stderr)
