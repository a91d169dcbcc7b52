"""The one place that turns errors into HTTP: each error's status and headers, and the JSON shape
(OpenAI's on /v1/*). Errors elsewhere carry facts only: a stable `code`, a message safe to show,
the `param` at fault, `retry_after` seconds."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .configs.store import DimensionChangeRefused, NoActiveConfig
from .db import DatabaseUnavailable
from .providers.base import (
    InvalidInput,
    ProviderError,
    TokenizerUnavailable,
    UpstreamError,
)
from .serve.batching import QueueClosed, QueueFull
from .serve.deadlines import ClientGone, RequestTimeout
from .serve.manager import NotReady

log = logging.getLogger(__name__)

_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                 403: "permission_error", 404: "invalid_request_error",
                 405: "invalid_request_error", 409: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 501: "api_error", 502: "api_error",
                 503: "service_unavailable"}
_OPENAI_ALIASES = ("/tokenize",)  # OpenAI-style routes outside /v1/ (TEI's names)


def _openai_shaped() -> bool:
    """Whether this request's errors take OpenAI's shape."""
    return request.path.startswith("/v1/") or request.path in _OPENAI_ALIASES


# The config an embeddings answer came from, and the one a client may require (409 otherwise).
CONFIG_ID_HEADER = "x-kgserve-config-id"
DIMENSIONS_HEADER = "x-kgserve-dimensions"


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


class InvalidHeader(ApiError):
    """A request header has a value that cannot be used."""

    code = "invalid_header"


class ConfigMismatch(ApiError):
    """The client requires a config (x-kgserve-config-id) other than the one served here."""

    code = "config_mismatch"

    def __init__(self, required: int, served: int | None) -> None:
        super().__init__(f"this worker serves config {served}, not config {required}; retry "
                         f"(another worker or a later moment may serve it) or follow the new "
                         f"config", param=CONFIG_ID_HEADER)
        self.config_id = served


class Unauthorized(ApiError):
    """The request lacks the right bearer token."""

    code = "unauthorized"


class NotFound(ApiError):
    """The path names a file or model that is not served (e.g. under /browser/)."""

    code = "not_found"


class RuntimeMissing(ApiError):
    """A part installed beside kgserve (transformers.js from npm) is missing."""

    code = "runtime_missing"


class FileChanged(ApiError):
    """A file changed on disk after it was verified, and again after it was checked anew."""

    code = "file_changed"


# Status by error class; the nearest class in an error's MRO decides.
_STATUS: dict[type[Exception], int] = {
    InvalidBody: 400, InvalidQuery: 422, ModelNotServed: 404, AdminDisabled: 403,
    Unauthorized: 401, InvalidHeader: 400, ConfigMismatch: 409,
    NotFound: 404, RuntimeMissing: 503, FileChanged: 503,
    ProviderError: 422, InvalidInput: 400, UpstreamError: 502, QueueFull: 429, QueueClosed: 503,
    NotReady: 503, DatabaseUnavailable: 503, NoActiveConfig: 503, DimensionChangeRefused: 409,
    TokenizerUnavailable: 501, RequestTimeout: 503, ClientGone: 499,
}


def http_status(exc: Exception) -> int:
    """The status `exc` is answered with (500 for anything not listed)."""
    return next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 500)


def _answer(status: int, message: str, code: str, param: str | None = None,
            details: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """Render an error in the shape of the URL space it happened in."""
    if _openai_shaped():
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
    if isinstance(exc, ConfigMismatch) and exc.config_id is not None:
        headers[CONFIG_ID_HEADER] = str(exc.config_id)
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
    status = 400 if _openai_shaped() else 422
    text = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in messages.items())
    return _answer(status, f"invalid request: {text}", "invalid_request",
                   param=_first_field(messages), details=messages)


# A refused body is read and thrown away up to this many bytes, so that the client, still
# sending, reads the 413 rather than a broken pipe (nginx's lingering close does the same).
# Beyond it the connection is closed unread.
DISCARD_LIMIT = 64 * 2**20


def _discard_body() -> bool:
    """Read what is left of the request body and drop it; False if there was too much."""
    length = request.content_length
    if length is not None and length > DISCARD_LIMIT:
        return False
    stream = request.environ.get("wsgi.input")
    read = 0
    while stream is not None and read <= DISCARD_LIMIT:
        chunk = stream.read(65536)
        if not chunk:
            return True
        read += len(chunk)
    return stream is None


def _too_large() -> Response:
    limit = request.max_content_length or 0
    size = f"{limit // 2**20} MB" if limit and limit % 2**20 == 0 else f"{limit} bytes"
    resp = _answer(413, f"the request body is larger than the limit ({size}; "
                        f"KG_MAX_CONTENT_LENGTH)", "request_too_large")
    if not _discard_body():
        resp.headers["Connection"] = "close"
    return resp


def _http(exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
             400: "bad_request"}
    if exc.code == 413:
        return _too_large()
    allow = {"Allow": ", ".join(allowed_methods())} if exc.code == 405 else {}  # 405 says Allow
    return _answer(exc.code or 500, exc.description or exc.name, codes.get(exc.code, "http_error"),
                   headers=allow)


def allowed_methods() -> list[str]:
    """The methods this request's path answers to, over every route of that path: the one
    source of Allow for OPTIONS and for 405."""
    adapter = current_app.create_url_adapter(request)
    return sorted(adapter.allowed_methods()) if adapter is not None else []


def _options() -> Response | None:
    """Answer OPTIONS with the allowed methods as JSON (Flask's automatic answer is empty)."""
    if request.method != "OPTIONS" or request.url_rule is None:
        return None  # no such path: the 404 handler answers
    methods = allowed_methods()
    resp = jsonify({"methods": methods})
    resp.headers["Allow"] = ", ".join(methods)
    return resp


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
    app.before_request(_options)


def gunicorn_error(status: int, reason: str, message: str) -> bytes:
    """The HTTP answer gunicorn writes itself (400, 414, 431, ...: the request never reached the
    app) as JSON in the app's /admin shape, for gunicorn.conf.py to use instead of HTML."""
    import json

    body = json.dumps({"success": False, "error": reason.lower().replace(" ", "_"),
                       "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body
