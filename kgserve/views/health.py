"""/healthz (liveness) and /readyz (can the active provider serve?)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..db import DatabaseUnavailable
from ..runtime import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process is alive."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 only when this worker has a provider loaded and is not stopping; the body says
    what is not ready.

    gunicorn hands each request to one worker: this is that worker's state (`scope`, `pid`),
    so while a config loads two probes may differ. A load balancer probing often sees each."""
    rt = runtime()
    status = rt.manager.status()
    try:
        with rt.db.connection(timeout=1.0) as conn:
            conn.execute("SELECT 1")
        database = "ok"
    except DatabaseUnavailable:
        database = "unavailable"
    ready = status["state"] == "ready" and not rt.stopping
    reasons = ["stopping: finishing the requests it accepted"] if rt.stopping else []
    if status["state"] != "ready":
        reasons.append({"loading": "model loading", "failed": f"model failed to load: "
                        f"{status['last_error']}", "not_loaded": "no model loaded yet"}
                       [status["state"]])
    if database != "ok":
        reasons.append("database unavailable" + (" (the loaded model keeps serving)"
                                                 if status["state"] == "ready" else ""))
    body = {"ready": ready, "checks": {"model": status["state"], "database": database,
                                       "process": "stopping" if rt.stopping else "serving"},
            "model": status["model"], "config_id": status["config_id"], "reasons": reasons,
            "scope": "worker", "pid": status["pid"]}
    resp = jsonify(body)
    resp.status_code = 200 if ready else 503
    return resp
