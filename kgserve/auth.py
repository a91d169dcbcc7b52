"""Bearer-token checks: KG_ADMIN_TOKEN for /admin/*, optional KG_API_TOKEN for /v1/*."""

from __future__ import annotations

import hmac

from flask import current_app, request

from .errors import AdminDisabled, Unauthorized


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def require_admin() -> None:
    """Refuse the request unless it carries the admin token (403 when no token is configured)."""
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        raise AdminDisabled("the admin API is disabled: set KG_ADMIN_TOKEN to a secret and "
                            "send it as 'Authorization: Bearer <token>'")
    given = _bearer()
    if given is None:
        raise Unauthorized("missing 'Authorization: Bearer <KG_ADMIN_TOKEN>' header")
    if not _matches(given, str(expected)):
        raise Unauthorized("invalid admin token")


def require_api_token() -> None:
    """When KG_API_TOKEN is set, refuse /v1/* requests that do not carry it."""
    expected = current_app.config.get("API_TOKEN")
    if not expected:
        return
    if not _matches(_bearer(), str(expected)):
        raise Unauthorized("invalid or missing API key: send 'Authorization: Bearer "
                           "<KG_API_TOKEN>'", "invalid_api_key")
