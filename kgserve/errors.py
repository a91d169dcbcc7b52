"""The one place that turns errors into HTTP: each error's status and headers, and the JSON shape
(OpenAI's on /v1/*). Errors elsewhere carry facts only: a stable `code`, a message safe to show,
the `param` at fault, `retry_after` seconds."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .batching import QueueClosed, QueueFull
from .db import DatabaseUnavailable
from .manager import NotReady
from .providers.base import InvalidInput, ProviderError, UpstreamError
from .store import DimensionChangeRefused, NoActiveConfig

log = logging.getLogger(__name__)

_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                 403: "permission_error", 404: "invalid_request_error",
                 405: "invalid_request_error", 409: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 502: "api_error", 503: "service_unavailable"}


class ApiError(Exception):
    """A request refused at the edge (body, query, token): a stable code, a message safe to show
    and the field at fault; its class decides the status (see _STATUS)."""

    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code
        self.param = param


class InvalidBody(ApiError):
    """The body is not a JSON object."""

    code = "invalid_json"


class InvalidQuery(ApiError):
    """A query parameter is out of range."""


class ModelNotServed(ApiError):
    """The request names a model other than the one served."""

    code = "model_not_found"


class AdminDisabled(ApiError):
    """No admin token is configured, so the admin API is off."""

    code = "admin_disabled"


class Unauthorized(ApiError):
    """The request lacks the right bearer token."""

    code = "unauthorized"


class NotFound(ApiError):
    """The path names a file or model that is not served (e.g. under /browser/)."""

    code = "not_found"


class RuntimeMissing(ApiError):
    """A part installed beside kgserve (transformers.js from npm) is missing."""

    code = "runtime_missing"


# Status by error class; the nearest class in an error's MRO decides.
_STATUS: dict[type[Exception], int] = {
    InvalidBody: 400, InvalidQuery: 422, ModelNotServed: 404, AdminDisabled: 403,
    Unauthorized: 401, NotFound: 404, RuntimeMissing: 503,
    ProviderError: 422, InvalidInput: 400, UpstreamError: 502, QueueFull: 429, QueueClosed: 503,
    NotReady: 503, DatabaseUnavailable: 503, NoActiveConfig: 503, DimensionChangeRefused: 409,
}


def http_status(exc: Exception) -> int:
    """The status `exc` is answered with (500 for anything not listed)."""
    return next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 500)


def _answer(status: int, message: str, code: str, param: str | None = None,
            details: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """Render an error in the shape of the URL space it happened in."""
    if request.path.startswith("/v1/"):
        body: dict[str, Any] = {"error": {
            "message": message, "type": _OPENAI_TYPES.get(status, "api_error"),
            "param": param, "code": code}}
    else:
        body = {"success": False, "error": code, "message": message}
        if param:
            body["param"] = param
        if details:
            body["fields"] = details
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


def _known(exc: Exception) -> Response:
    headers = {}
    if getattr(exc, "retry_after", None) is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return _answer(http_status(exc), str(exc), exc.code, getattr(exc, "param", None),
                   headers=headers)


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
    status = 400 if request.path.startswith("/v1/") else 422
    text = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in messages.items())
    return _answer(status, f"invalid request: {text}", "invalid_request",
                   param=_first_field(messages), details=messages)


def _http(exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
             400: "bad_request"}
    message = exc.description or exc.name
    if exc.code == 413:
        limit = request.max_content_length or 0
        size = f"{limit // 2**20} MB" if limit and limit % 2**20 == 0 else f"{limit} bytes"
        message = f"the request body is larger than the limit ({size}; KG_MAX_CONTENT_LENGTH)"
    return _answer(exc.code or 500, message, codes.get(exc.code, "http_error"))


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _answer(500, "internal server error (details are in the server log)",
                   "internal_error")


def init_app(app: Flask) -> None:
    """Register the handlers."""
    for known in _STATUS:
        app.register_error_handler(known, _known)
    app.register_error_handler(ValidationError, _validation)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
