"""How a migration version is written for people: 003, and lists of them."""

from __future__ import annotations

from collections.abc import Iterable


def version_text(version: int) -> str:
    """Return a version as messages show it, three digits at least: 3 -> "003"."""
    return f"{version:03d}"


def versions_text(versions: Iterable[int]) -> str:
    """Return versions as one comma-separated list: "001, 004"."""
    return ", ".join(version_text(v) for v in versions)
