"""Blueprints, one a module."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import InvalidBody


def json_body() -> dict[str, Any]:
    """Return the request's JSON object, or raise InvalidBody saying what is wrong."""
    if not request.is_json:
        raise InvalidBody("send a JSON body with 'Content-Type: application/json'")
    _check_streamed_size()
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # json gives up past ~1000 levels; not a ValueError, so not silent
        raise InvalidBody("the request body is nested too deeply") from None
    if body is None:
        raise InvalidBody("the request body is not valid JSON")
    if not isinstance(body, dict):
        raise InvalidBody("the request body must be a JSON object")
    return body


def _check_streamed_size() -> None:
    """Raise 413 for a chunked body over the limit. werkzeug reads such a body up to
    max_content_length and stops there without a word: the cut JSON would look invalid."""
    limit = request.max_content_length
    if request.content_length is not None or limit is None:
        return  # a declared length was checked against the limit already
    data = request.get_data(cache=True)
    if len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
