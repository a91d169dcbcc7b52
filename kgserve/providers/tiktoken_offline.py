"""OpenAI token counts with tiktoken, from encoding files already on this machine (never fetched).

tiktoken downloads its BPE files on first use and keeps them in TIKTOKEN_CACHE_DIR (else
DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache) under the SHA-1 of their URL. A server must not
reach out while answering a request, so an encoding is used only when its file is in that cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache

from kgserve.providers.base import TokenizerUnavailable

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def cache_file(name: str) -> str:
    """Where tiktoken keeps (or would keep) the BPE file of encoding `name`."""
    folder = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get(
        "DATA_GYM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "data-gym-cache")))
    return os.path.join(folder, hashlib.sha1(_URL.format(name=name).encode()).hexdigest())


@lru_cache(maxsize=8)
def encoding_for(model: str):
    """Return tiktoken's encoding for `model`; TokenizerUnavailable unless it loads offline."""
    try:
        import tiktoken
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        raise TokenizerUnavailable("token counting for OpenAI models needs the tiktoken "
                                   "package, which is not installed") from None
    try:
        name = encoding_name_for_model(model)
    except KeyError:
        raise TokenizerUnavailable(f"tiktoken knows no encoding for model {model!r}") from None
    path = cache_file(name)
    if not os.path.isfile(path):
        raise TokenizerUnavailable(
            f"tiktoken's {name} encoding for {model!r} is not on this machine and is never "
            f"downloaded at run time: put {name}.tiktoken at {path} (set TIKTOKEN_CACHE_DIR "
            f"to choose the folder)")
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # noqa: BLE001 - a damaged file; tiktoken would try to fetch it
        raise TokenizerUnavailable(f"tiktoken could not load its {name} encoding from {path}: "
                                   f"{type(exc).__name__}") from None
