"""/admin/embedding/*: read, change and reload the config (Bearer KG_ADMIN_TOKEN)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .. import ops
from ..auth import require_admin
from ..errors import InvalidQuery
from ..runtime import runtime
from ..schemas import ConfigRequestSchema
from . import json_body

bp = Blueprint("admin", __name__, url_prefix="/admin/embedding")
bp.before_request(require_admin)


@bp.get("/config")
def get_config() -> Response:
    """Return the full active row and this worker's model status."""
    rt = runtime()
    row, stale = ops.active_row(rt)
    return jsonify({**row, "model_status": rt.manager.status(), "stale": stale})


@bp.get("/configs")
def list_configs() -> Response:
    """Return the config history, newest first."""
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise InvalidQuery("limit must be an integer from 1 to 1000", param="limit")
    return jsonify({"configs": ops.list_configs(runtime(), int(limit))})


@bp.post("/config")
def set_config() -> Response:
    """Load the new provider here, then activate it everywhere (validate, then commit)."""
    data = ConfigRequestSchema().load(json_body())
    data.setdefault("updated_by", "admin-api")
    return jsonify(ops.change_config(runtime(), data))


@bp.post("/config/reload")
def reload_config() -> Response:
    """Rebuild the provider from the database's active row; the old one serves meanwhile."""
    return jsonify(ops.reload_config(runtime()))
