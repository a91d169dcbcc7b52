"""POST /v1/embeddings and GET /v1/models: the OpenAI-compatible API."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .. import encodings, ops
from ..auth import require_api_token
from ..deadlines import Waiting, connection_closed, parse_timeout
from ..errors import InvalidHeader, ModelNotServed
from ..runtime import runtime
from ..schemas import EmbeddingsRequestSchema
from . import json_body

bp = Blueprint("openai_api", __name__, url_prefix="/v1")
bp.before_request(require_api_token)


def request_waiting() -> Waiting:
    """This request's deadline (x-request-timeout, else KG_REQUEST_TIMEOUT) and client check."""
    try:
        seconds = parse_timeout(request.headers.get("x-request-timeout"),
                                current_app.config["REQUEST_TIMEOUT"])
    except ValueError as exc:
        raise InvalidHeader(str(exc), param="x-request-timeout") from None
    return Waiting(seconds, closed=connection_closed(request.environ))


def check_model(asked: str | None, served: str) -> None:
    """Refuse a request that names a model other than the one served."""
    if asked and asked != served:
        raise ModelNotServed(f"the model '{asked}' is not served here; the active model is "
                             f"'{served}'", param="model")


@bp.post("/embeddings")
def embeddings() -> Response:
    """Embed `input` with the active model."""
    req = EmbeddingsRequestSchema().load(json_body())
    waiting = request_waiting()
    rt = runtime()
    with rt.manager.use(lambda: ops.active_config(rt)) as provider:
        check_model(req.get("model"), provider.model)
        dims = req.get("dimensions")
        # The full size asks for nothing: such requests share model calls with plain ones.
        result = provider.embed(req["input"], input_type=req.get("input_type"),
                                dimensions=dims if dims != provider.dimensions else None,
                                truncate=req["truncate"], waiting=waiting)
        model = provider.model
        fmt = req["encoding_format"]
        ranges = provider.ranges(dims) if fmt in encodings.CALIBRATED else None
    resp = jsonify({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e}
                 for i, e in enumerate(encodings.wire(result.vectors, fmt, ranges))],
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens,
                  "truncated_inputs": result.truncated},
    })
    resp.headers["x-truncated-inputs"] = str(result.truncated)
    resp.headers["x-cache-hits"] = str(result.cache_hits)
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
