"""GET /openapi.json: an OpenAPI 3 description built with apispec and the marshmallow schemas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

bp = Blueprint("openapi", __name__)
_ADMIN = [{"adminToken": []}]


_EMBEDDING_HEADERS = {name: {"description": text, "schema": {"type": kind}} for name, kind, text in (
    ("x-kgserve-config-id", "integer", "the config row it came from"),
    ("x-kgserve-dimensions", "integer", "that config's dimensions"),
    ("x-truncated-inputs", "integer", "inputs cut at the model's max_seq_length"),
    ("x-cache-hits", "integer", "inputs answered from the embedding cache"),
    ("x-queue-time", "number", "ms waiting for a batch"),
    ("x-inference-time", "number", "ms in the model (or upstream API)"))}


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, schema: str = "Error") -> dict[str, Any]:
    return {str(c): _json(schema, "error") for c in codes}


def _paths() -> dict[str, dict[str, Any]]:
    admin_errors = _errors(401, 403, 503)
    return {
        "/embedding/config": {"get": {
            "summary": "The active config's public summary", "tags": ["public"],
            "responses": {"200": _json("ConfigSummary"), **_errors(503)}}},
        "/admin/embedding/config": {
            "get": {"summary": "The full active row and this worker's model status",
                    "tags": ["admin"], "security": _ADMIN,
                    "responses": {"200": _json("ActiveConfig"), **admin_errors}},
            "post": {"summary": "Validate (load) a new config, then activate it everywhere",
                     "tags": ["admin"], "security": _ADMIN,
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": "ConfigRequest"}}},
                     "responses": {"200": _json("ChangeResult"), **admin_errors,
                                   **_errors(400, 409, 413, 422)}}},
        "/admin/embedding/configs": {"get": {
            "summary": "Config history, newest first", "tags": ["admin"], "security": _ADMIN,
            "parameters": [{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _json("ConfigList"), **admin_errors, **_errors(422)}}},
        "/admin/embedding/config/reload": {"post": {
            "summary": "Rebuild the provider from the active row (zero downtime)",
            "tags": ["admin"], "security": _ADMIN,
            "responses": {"200": _json("ChangeResult"), **admin_errors, **_errors(422)}}},
        "/v1/embeddings": {"post": {
            "summary": "Create embeddings (OpenAI-compatible)", "tags": ["openai"],
            "security": [{"apiToken": []}, {}],
            "parameters": [
                {"name": "x-kgserve-config-id", "in": "header", "required": False,
                 "description": "serve only from this config (else 409 with the served id)",
                 "schema": {"type": "string", "pattern": "^[0-9]+$"}},
                {"name": "x-request-timeout", "in": "header", "required": False,
                 "description": "seconds this request may wait for the model "
                                "(default KG_REQUEST_TIMEOUT); then 503",
                 "schema": {"type": "number", "exclusiveMinimum": True,
                            "minimum": 0, "maximum": 3600}}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": "EmbeddingsRequest"}}},
            "responses": {"200": {**_json("EmbeddingsResponse"), "headers": _EMBEDDING_HEADERS},
                          **_errors(400, 401, 404, 409, 413, 502, schema="OpenAIError"),
                          "429": _json("OpenAIError", "too many texts waiting (Retry-After)"),
                          "503": _json("OpenAIError", "no model yet, or the request's deadline "
                                                      "passed (Retry-After)")}}},
        **{path: {"post": {
            "summary": "Token ids and counts as the active model sees them" + alias,
            "tags": ["openai"], "security": [{"apiToken": []}, {}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": "TokenizeRequest"}}},
            "responses": {"200": _json("TokenizeResponse"),
                          **_errors(400, 401, 404, 413, 501, 503, schema="OpenAIError")}}}
           for path, alias in (("/v1/tokenize", ""), ("/tokenize", " (alias of /v1/tokenize)"))},
        "/v1/models": {"get": {
            "summary": "The active model", "tags": ["openai"],
            "security": [{"apiToken": []}, {}],
            "responses": {"200": _json("ModelList"), **_errors(401, 503, schema="OpenAIError")}}},
        "/v1/models/{model}": {"get": {
            "summary": "The active model, by its id (404 for any other)", "tags": ["openai"],
            "security": [{"apiToken": []}, {}],
            "parameters": [{"name": "model", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json("Model"),
                          **_errors(401, 404, 503, schema="OpenAIError")}}},
        "/browser/": {"get": {
            "summary": "A page embedding in the browser next to the server (transformers.js)",
            "tags": ["browser"], "responses": {"200": {"description": "HTML"}}}},
        "/browser/kgembed.js": {"get": {
            "summary": "ES module: embed(), rank(), rerank() with the server's vectors",
            "tags": ["browser"], "responses": {"200": {"description": "JavaScript"}}}},
        "/browser/models/{model_id}/{file}": {"get": {
            "summary": "A file of the active model's browser export (immutable; ETag = sha256)",
            "tags": ["browser"],
            "parameters": [{"name": n, "in": "path", "required": True,
                            "schema": {"type": "string"}} for n in ("model_id", "file")],
            "responses": {"200": {"description": "the file (206 for a Range)"},
                          "304": {"description": "not modified"}, **_errors(404, 503)}}},
        "/healthz": {"get": {"summary": "Liveness", "tags": ["health"],
                             "responses": {"200": _json("Health")}}},
        "/readyz": {"get": {"summary": "Readiness: 200 only when the provider can serve and the "
                                       "worker is not stopping",
                            "tags": ["health"],
                            "responses": {"200": _json("Health"),
                                          "503": _json("Health", "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics, summed over the workers",
                             "tags": ["meta"], "responses": {"200": {
                                 "description": "Prometheus text format",
                                 "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "tags": ["meta"],
                                  "responses": {"200": {"description": "OpenAPI 3 document"}}}},
    }


def build_spec() -> dict[str, Any]:
    """Return the OpenAPI document as a dict."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    from . import schemas

    spec = APISpec(title="kgserve", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Embedding server: local sentence-transformers or "
                                        "OpenAI behind one OpenAI-compatible API."})
    for name in ("ConfigRequest", "ConfigSummary", "ActiveConfig", "ConfigList", "ChangeResult",
                 "EmbeddingsRequest", "EmbeddingsResponse", "TokenizeRequest", "TokenizeResponse",
                 "Model", "ModelList", "Error", "OpenAIError",
                 "Health"):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    for scheme in ("adminToken", "apiToken"):
        spec.components.security_scheme(scheme, {"type": "http", "scheme": "bearer"})
    for path, operations in _paths().items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """Serve the OpenAPI document (built once per app)."""
    doc = current_app.extensions.get("kgserve.openapi")
    if doc is None:
        doc = current_app.extensions["kgserve.openapi"] = build_spec()
    return jsonify(doc)


def init_app(app: Flask) -> None:
    """Register the blueprint."""
    app.register_blueprint(bp)
