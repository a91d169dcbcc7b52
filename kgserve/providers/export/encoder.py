"""Run an exported model with ONNX Runtime or OpenVINO: tokenize, run the graph, pool, normalise.

The graph computes the transformer's last hidden state (convert.py); pooling and
normalisation follow the sentence-transformers modules of the model (checked by `layout()`), in
numpy. Threads are set in each runtime's own options, never through torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .convert import OUTPUT, UnsupportedModel

POOLINGS = ("mean", "cls", "max", "lasttoken")


@dataclass(frozen=True)
class Layout:
    """The parts of a sentence-transformers model that run outside the graph."""

    pooling: str
    normalize: bool
    dimensions: int


def layout(st) -> Layout:
    """Read Transformer -> Pooling -> (Normalize) from a loaded SentenceTransformer, or refuse."""
    pooling = st[1] if len(st) > 1 else None
    return check_layout([type(m).__name__ for m in st], getattr(pooling, "pooling_mode", None),
                        getattr(pooling, "include_prompt", True),
                        getattr(pooling, "embedding_dimension", 0))


def check_layout(kinds: list[str], mode, include_prompt: bool, dimensions: int) -> Layout:
    """The Layout of modules `kinds` with this pooling, or UnsupportedModel saying why not.

    Also used on a model's files alone (kgserve.browser.export): one rule for both.
    """
    if len(kinds) not in (2, 3) or kinds[0] != "Transformer" or kinds[1] != "Pooling" \
            or kinds[2:] not in ([], ["Normalize"]):
        raise UnsupportedModel(f"its modules are {' -> '.join(kinds)}; exports run "
                               "Transformer -> Pooling (-> Normalize) only")
    if not isinstance(mode, str) or mode not in POOLINGS:
        raise UnsupportedModel(f"pooling mode {mode!r} is not supported by exports "
                               f"(supported: {', '.join(POOLINGS)})")
    if not include_prompt:
        raise UnsupportedModel("its pooling excludes prompt tokens (include_prompt=False), which "
                               "exports do not do")
    return Layout(mode, len(kinds) == 3, int(dimensions))


class OnnxSession:
    """An ONNX Runtime CPU session with `threads` intra-op threads."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would spin on the cores the other gunicorn workers need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([OUTPUT], feed)[0]


class OpenVinoSession:
    """An OpenVINO CPU compiled model: one stream, `threads` threads, no core pinning."""

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        # Pinning would put every worker's threads on the same cores. The CPU plugin keeps
        # compiled kernels per input shape (5000 by default): a batching server meets a new
        # (texts, tokens) shape all the time, and a worker's memory would grow with them; a
        # small cache keeps it flat.
        self.compiled = core.compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False, "CPU_RUNTIME_CACHE_CAPACITY": 128})
        self.request = self.compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(feed, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()


def open_session(backend: str, path: Path, threads: int) -> OnnxSession | OpenVinoSession:
    """Open `path` with the runtime of `backend`."""
    return OnnxSession(path, threads) if backend == "onnx" else OpenVinoSession(path, threads)


class CpuEncoder:
    """Texts -> vectors with a session; not thread-safe (the provider holds a lock)."""

    def __init__(self, session, tokenizer, shape: Layout, max_seq_length: int | None) -> None:
        self.session, self.tokenizer, self.shape = session, tokenizer, shape
        self.max_seq_length = max_seq_length
        self.names = [n for n in tokenizer.model_input_names if n in session.inputs]

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Tokenize like the model does: special tokens, truncation, padding to the longest."""
        kwargs = {"truncation": True, "max_length": self.max_seq_length} \
            if self.max_seq_length else {}
        enc = self.tokenizer(texts, padding=True, return_tensors="np", **kwargs)
        return {n: enc[n].astype(np.int64, copy=False) for n in self.names}

    def rows(self, texts: list[str]) -> list[dict[str, list[int]]]:
        """Each text's ids (and token types, where the graph reads them) untruncated and
        unpadded: the counting pass's tokenizer output, which encode() can take as is."""
        types = "token_type_ids" in self.names
        enc = self.tokenizer(texts, add_special_tokens=True, return_attention_mask=False,
                             return_token_type_ids=types, verbose=False)
        names = ["input_ids", "token_type_ids"] if types else ["input_ids"]
        return [{n: enc[n][k] for n in names} for k in range(len(texts))]

    def encode(self, texts: list[str], batch_size: int,
               rows: list[dict[str, list[int]]] | None = None) -> tuple[np.ndarray, list[int]]:
        """Return float32 vectors and token counts for `texts`, in order; with `rows` (see
        rows()) of the same texts, without tokenizing them again."""
        if rows is not None:
            order = sorted(range(len(texts)), key=lambda i: len(rows[i]["input_ids"]))
        else:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        vectors = np.empty((len(texts), self.shape.dimensions), dtype=np.float32)
        tokens = [0] * len(texts)
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start:start + batch_size]
            feed = self.padded([rows[i] for i in chunk]) if rows is not None else None
            if feed is None:
                feed = self.features([texts[i] for i in chunk])
            mask = feed["attention_mask"]
            out = pool(self.session.run(feed), mask, self.shape.pooling)
            vectors[chunk] = out
            for i, n in zip(chunk, mask.sum(1).tolist()):
                tokens[i] = n
        if self.shape.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, tokens

    def padded(self, rows: list[dict[str, list[int]]]) -> dict[str, np.ndarray] | None:
        """The graph's inputs for `rows`, padded like the tokenizer pads; None when a row is
        longer than the model reads (where to cut is the tokenizer's business: features())."""
        longest = max(len(r["input_ids"]) for r in rows)
        if self.max_seq_length and longest > self.max_seq_length:
            return None
        tok = self.tokenizer
        pads = {"input_ids": tok.pad_token_id or 0, "token_type_ids": tok.pad_token_type_id,
                "attention_mask": 0}
        feed = {n: np.full((len(rows), longest), pads[n], dtype=np.int64) for n in self.names}
        left = tok.padding_side == "left"
        for k, row in enumerate(rows):
            n = len(row["input_ids"])
            at = slice(longest - n, longest) if left else slice(0, n)
            for name, ids in row.items():
                if name in feed:
                    feed[name][k, at] = ids
            if "attention_mask" in feed:
                feed["attention_mask"][k, at] = 1
        return feed


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states (batch, tokens, dim) into one vector per text, ignoring padding."""
    hidden = hidden.astype(np.float32, copy=False)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "lasttoken":
        return hidden[np.arange(len(hidden)), mask.sum(1) - 1]
    weights = mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(weights > 0, hidden, -1e9).max(1)
    return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
