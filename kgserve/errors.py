"""ApiError and the handlers that turn every error into JSON (OpenAI's shape on /v1/*)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .db import DatabaseUnavailable
from .manager import NotReady
from .providers.base import ProviderError
from .store import DimensionChangeRefused, NoActiveConfig

log = logging.getLogger(__name__)

_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                 403: "permission_error", 404: "invalid_request_error",
                 405: "invalid_request_error", 409: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 502: "api_error", 503: "service_unavailable"}


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message safe to show."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.details, self.headers = details, headers or {}


def error_response(err: ApiError) -> Response:
    """Render `err` in the shape of the URL space it happened in."""
    if request.path.startswith("/v1/"):
        body: dict[str, Any] = {"error": {
            "message": err.message, "type": _OPENAI_TYPES.get(err.status, "api_error"),
            "param": err.param, "code": err.code}}
    else:
        body = {"success": False, "error": err.code, "message": err.message}
        if err.param:
            body["param"] = err.param
        if err.details:
            body["fields"] = err.details
    resp = jsonify(body)
    resp.status_code = err.status
    resp.headers.update(err.headers)
    return resp


def _first_field(messages: Any, prefix: str = "") -> str | None:
    """Return the dotted name of the first invalid field in a marshmallow messages dict."""
    if isinstance(messages, dict) and messages:
        key, sub = next(iter(messages.items()))
        if key == "_schema":
            return None
        name = f"{prefix}.{key}" if prefix else str(key)
        deeper = _first_field(sub, name) if isinstance(sub, dict) else None
        return deeper or name
    return None


def _validation(exc: ValidationError) -> Response:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    field = _first_field(messages)
    status = 400 if request.path.startswith("/v1/") else 422
    text = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in messages.items())
    return error_response(ApiError(status, f"invalid request: {text}", "invalid_request",
                                   param=field, details=messages))


def _http(exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
             400: "bad_request"}
    message = exc.description or exc.name
    if exc.code == 413:
        limit = request.max_content_length or 0
        size = f"{limit // 2**20} MB" if limit and limit % 2**20 == 0 else f"{limit} bytes"
        message = f"the request body is larger than the limit ({size}; KG_MAX_CONTENT_LENGTH)"
    return error_response(ApiError(exc.code or 500, message, codes.get(exc.code, "http_error")))


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(ApiError(500, "internal server error (details are in the server log)",
                                   "internal_error"))


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(ValidationError, _validation)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(
        ProviderError, lambda e: error_response(ApiError(e.status, str(e), e.code,
                                                         param=getattr(e, "param", None),
                                                         headers=getattr(e, "headers", None))))
    app.register_error_handler(
        DatabaseUnavailable,
        lambda e: error_response(ApiError(503, str(e), "database_unavailable",
                                          headers={"Retry-After": "5"})))
    app.register_error_handler(
        NotReady, lambda e: error_response(ApiError(503, str(e), "model_not_ready",
                                                    headers={"Retry-After": "5"})))
    app.register_error_handler(
        DimensionChangeRefused,
        lambda e: error_response(ApiError(409, str(e), "dimension_change_refused",
                                          param="embedding_dimensions")))
    app.register_error_handler(
        NoActiveConfig, lambda e: error_response(ApiError(503, str(e), "not_configured")))
    app.register_error_handler(Exception, _unexpected)
