"""The texts the project ships: the accuracy guard's probe set and the int8 calibration set."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def _lines(name: str) -> list[str]:
    text = resources.files(__package__).joinpath("data", name).read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@cache
def probe_texts() -> tuple[str, ...]:
    """The guard's fixed probe set (>= 64 texts of mixed length and language)."""
    return tuple(_lines("probe_texts.txt"))


@cache
def calibration_texts() -> tuple[str, ...]:
    """Calibration texts: every shipped paragraph whole, then each of its sentences."""
    paragraphs = _lines("calibration_texts.txt")
    sentences = [s.strip() for p in paragraphs for s in _SENTENCE_END.split(p) if s.strip()]
    seen, out = set(), []
    for text in [*paragraphs, *sentences]:
        if text not in seen:
            seen.add(text)
            out.append(text)
    return tuple(out)
