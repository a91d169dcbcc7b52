"""Positions in a file's text: character offsets to lines and columns, and the source line shown
with a caret under the column (as compilers print errors)."""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass
from pathlib import Path


class LineMap:
    """Turn character offsets of one text into 1-based line numbers and source lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts = [0]
        i = text.find("\n")
        while i >= 0:
            self._starts.append(i + 1)
            i = text.find("\n", i + 1)

    def line_of(self, offset: int) -> int:
        """Return the 1-based line holding character `offset`."""
        return bisect.bisect_right(self._starts, max(offset, 0))

    def offset_of_line(self, line: int) -> int:
        """Return the offset of the first character of 1-based `line`."""
        return self._starts[line - 1]

    def column_of(self, offset: int) -> int:
        """Return the 1-based column of character `offset`."""
        return offset - self._starts[self.line_of(offset) - 1] + 1

    def source_line(self, line: int) -> str:
        """Return the text of 1-based `line` without its newline."""
        start = self._starts[line - 1]
        end = self._starts[line] - 1 if line < len(self._starts) else len(self.text)
        return self.text[start:end]


@dataclass(frozen=True)
class SourceError:
    """Where in a file something went wrong."""

    path: Path
    line: int
    column: int | None
    source_line: str

    def location(self) -> str:
        """Return `PATH:LINE`."""
        return f"{self.path}:{self.line}"

    def excerpt(self) -> str:
        """Return the offending source line with a caret under the column, indented."""
        gutter = f"{self.line:>5} | "
        shown = self.source_line.expandtabs(1)  # a tab is one column, as the server counts
        out = f"{gutter}{shown}"
        if self.column:
            out += "\n" + " " * (len(gutter) + display_width(shown[:self.column - 1])) + "^"
        return out


def display_width(text: str) -> int:
    """Return how many terminal columns `text` takes (CJK and other wide characters take two)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def source_error(path: Path, lines: LineMap, offset: int, with_column: bool = True) -> SourceError:
    """Return the SourceError for character `offset` of a file."""
    line = lines.line_of(offset)
    return SourceError(path, line, lines.column_of(offset) if with_column else None,
                       lines.source_line(line))
