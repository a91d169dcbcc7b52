"""POST /v1/tokenize (and its alias /tokenize): count tokens before sending texts to embed."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from .. import ops
from ..auth import require_api_token
from ..providers.base import TokenCounts
from ..runtime import runtime
from ..schemas import TokenizeRequestSchema, texts_schema
from . import json_body
from .openai_api import check_model

bp = Blueprint("tokenize", __name__)
bp.before_request(require_api_token)


@bp.post("/v1/tokenize")
@bp.post("/tokenize")
def tokenize() -> Response:
    """Token ids and counts of each input as the active model sees them, before truncation."""
    req = texts_schema(TokenizeRequestSchema, current_app.config["MAX_INPUT_CHARS"]).load(
        json_body())
    rt = runtime()
    with rt.manager.borrow(lambda: ops.active_config(rt)) as (provider, _):
        check_model(req.get("model"), provider.model)
        ids = provider.tokenize(req["input"], req.get("input_type"))
        limit, model = provider.max_tokens, provider.model
    exceeds = TokenCounts.of(map(len, ids), limit).exceeds
    return jsonify({
        "object": "list", "model": model, "max_seq_length": limit,
        "data": [{"object": "tokens", "index": i, "tokens": t, "count": len(t),
                  "exceeds_max_seq_length": over}
                 for i, (t, over) in enumerate(zip(ids, exceeds))]})
