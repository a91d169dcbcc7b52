"""How a migration version is written for people: 003, and lists of them."""

from __future__ import annotations

from collections.abc import Iterable

# Consecutive versions from this many on are written as one range.
RANGE_FROM = 3


def version_text(version: int) -> str:
    """Return a version as messages show it, three digits at least: 3 -> "003"."""
    return f"{version:03d}"


def versions_text(versions: Iterable[int]) -> str:
    """Return versions ascending, runs of consecutive ones as ranges, and a count when shortened.

    [1, 4] -> "001, 004"; [1, 2, 3, 4, 7] -> "001–004, 007 (5 versions)".
    """
    ordered = sorted(set(versions))
    runs: list[list[int]] = []
    for v in ordered:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    parts: list[str] = []
    for run in runs:
        if len(run) >= RANGE_FROM:
            parts.append(f"{version_text(run[0])}–{version_text(run[-1])}")
        else:
            parts.extend(version_text(v) for v in run)
    text = ", ".join(parts)
    return f"{text} ({len(ordered)} versions)" if len(parts) < len(ordered) else text
