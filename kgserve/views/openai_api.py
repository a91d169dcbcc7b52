"""POST /v1/embeddings and GET /v1/models: the OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .. import encodings, ops, redact
from ..auth import require_api_token
from ..errors import (
    CONFIG_ID_HEADER,
    DIMENSIONS_HEADER,
    ConfigMismatch,
    InvalidHeader,
    ModelNotServed,
)
from ..runtime import runtime
from ..schemas import EmbeddingsRequestSchema, texts_schema
from ..serve.deadlines import Waiting, connection_closed, parse_timeout
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
        raise ModelNotServed(f"the model {redact.echo(asked)} is not served here; the active "
                             f"model is '{served}'", param="model")


@bp.post("/embeddings")
def embeddings() -> Response:
    """Embed `input` with the active model."""
    limit = current_app.config["MAX_INPUT_CHARS"]
    req = texts_schema(EmbeddingsRequestSchema, limit).load(json_body())
    required = _required_config()
    waiting = request_waiting()
    rt = runtime()
    with rt.manager.borrow(lambda: ops.active_config(rt)) as (provider, config_id):
        if required is not None and required != config_id:
            raise ConfigMismatch(required, config_id)
        check_model(req.get("model"), provider.model)
        dims = req.get("dimensions")
        # The full size asks for nothing: such requests share model calls with plain ones.
        result = provider.embed(req["input"], input_type=req.get("input_type"),
                                dimensions=dims if dims != provider.dimensions else None,
                                truncate=req["truncate"], waiting=waiting)
        model, dimensions = provider.model, provider.dimensions
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
    # Which vector space this is: two configs of one model may differ in size (384 vs 256).
    if config_id is not None:
        resp.headers[CONFIG_ID_HEADER] = str(config_id)
    resp.headers[DIMENSIONS_HEADER] = str(dimensions)
    return resp


def _required_config() -> int | None:
    """The config id the client requires (x-kgserve-config-id), if it sent one."""
    raw = request.headers.get(CONFIG_ID_HEADER)
    if raw is None:
        return None
    if not (raw.strip().isascii() and raw.strip().isdigit()):
        raise InvalidHeader(f"{CONFIG_ID_HEADER} must be a config id (a positive integer), "
                            f"not {redact.echo(raw)}", param=CONFIG_ID_HEADER)
    return int(raw)


@bp.get("/models")
def models() -> Response:
    """List the one active model."""
    return jsonify({"object": "list", "data": [_model()]})


@bp.get("/models/<path:model_id>")
def retrieve_model(model_id: str) -> Response:
    """Describe the active model (the SDK's models.retrieve); 404 for any other."""
    served = _model()
    check_model(model_id, served["id"])
    return jsonify(served)


def _model() -> dict[str, Any]:
    """The active model as OpenAI describes a model."""
    rt = runtime()
    provider = rt.manager.current()
    if provider is not None:
        model, owner = provider.model, provider.config.provider
        row = rt.last_row if rt.last_row and rt.last_row["model_name"] == model else None
    else:
        row, _ = ops.active_row(rt)
        model, owner = row["model_name"], row["provider"]
    created = int(row["created_at"].timestamp()) if row and row.get("created_at") else 0
    return {"id": model, "object": "model", "created": created, "owned_by": f"kgserve-{owner}"}
