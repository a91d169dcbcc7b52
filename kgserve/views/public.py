"""GET /embedding/config: the public summary of the active config."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .. import ops
from ..runtime import runtime

bp = Blueprint("public", __name__)


@bp.get("/embedding/config")
def embedding_config() -> Response:
    """Return the active config's summary (the last known one while the database is down)."""
    row, stale = ops.active_row(runtime())
    resp = jsonify(ops.summary(row))
    if stale:
        resp.headers["X-Kgserve-Stale"] = "database unavailable; last known config"
    return resp
