"""Blueprints, one a module."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import InvalidBody


def json_body() -> dict[str, Any]:
    """Return the request's JSON object, or raise InvalidBody saying what is wrong."""
    if not request.is_json:
        raise InvalidBody("send a JSON body with 'Content-Type: application/json'")
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidBody("the request body is not valid JSON")
    if not isinstance(body, dict):
        raise InvalidBody("the request body must be a JSON object")
    return body
