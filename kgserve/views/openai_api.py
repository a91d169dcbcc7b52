"""POST /v1/embeddings and GET /v1/models: the OpenAI-compatible API."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, Response, jsonify

from .. import ops
from ..auth import require_api_token
from ..errors import ModelNotServed
from ..runtime import runtime
from ..schemas import EmbeddingsRequestSchema
from . import json_body

bp = Blueprint("openai_api", __name__, url_prefix="/v1")
bp.before_request(require_api_token)


def encode(vector: Any, fmt: str) -> list[float] | str:
    """Return one vector as a list of floats, or base64 of little-endian float32."""
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype("float32").tolist()


@bp.post("/embeddings")
def embeddings() -> Response:
    """Embed `input` with the active model."""
    req = EmbeddingsRequestSchema().load(json_body())
    rt = runtime()
    with rt.manager.use(lambda: ops.active_config(rt)) as provider:
        if req.get("model") and req["model"] != provider.model:
            raise ModelNotServed(f"the model '{req['model']}' is not served here; the active "
                                 f"model is '{provider.model}'", param="model")
        dims = req.get("dimensions")
        # The full size asks for nothing: such requests share model calls with plain ones.
        result = provider.embed(req["input"], input_type=req.get("input_type"),
                                dimensions=dims if dims != provider.dimensions else None)
        model = provider.model
    fmt = req["encoding_format"]
    resp = jsonify({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v, fmt)}
                 for i, v in enumerate(result.vectors)],
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    })
    # Where the time went, in ms: waiting for a batch, and in the model (or upstream API).
    resp.headers["x-queue-time"] = f"{result.queue_seconds * 1000:.2f}"
    resp.headers["x-inference-time"] = f"{result.inference_seconds * 1000:.2f}"
    return resp


@bp.get("/models")
def models() -> Response:
    """List the one active model."""
    rt = runtime()
    provider = rt.manager.current()
    if provider is not None:
        model, owner = provider.model, provider.config.provider
        row = rt.last_row if rt.last_row and rt.last_row["model_name"] == model else None
    else:
        row, _ = ops.active_row(rt)
        model, owner = row["model_name"], row["provider"]
    created = int(row["created_at"].timestamp()) if row and row.get("created_at") else 0
    return jsonify({"object": "list", "data": [
        {"id": model, "object": "model", "created": created, "owned_by": f"kgserve-{owner}"}]})
