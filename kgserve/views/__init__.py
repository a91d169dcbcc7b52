"""Blueprints, one a module."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import ApiError


def json_body() -> dict[str, Any]:
    """Return the request's JSON object, or raise a 400 ApiError saying what is wrong."""
    if not request.is_json:
        raise ApiError(400, "send a JSON body with 'Content-Type: application/json'",
                       "invalid_json")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "the request body is not valid JSON", "invalid_json")
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_json")
    return body
