"""The `-- kgmigrate:WORD ...` directives of a file, found by PostgreSQL's scanner (pglast)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sourcemap import LineMap
from .sqltext import _COMMENT_TOKENS, _parser

# Matched against the text of one `--` comment token the scanner found, never against raw lines;
# the directive's own words after the marker are split on whitespace.
_DIRECTIVE_RE = re.compile(r"--\s*kgmigrate:\s*(?P<word>\S*)(?P<args>.*)", re.IGNORECASE)
KNOWN = ("no-transaction", "requires")


@dataclass(frozen=True)
class Directive:
    """One `-- kgmigrate:WORD ARGS` comment: where it is, and whether it leads the file."""

    word: str  # lower case
    args: tuple[str, ...]
    line: int
    leading: bool  # before the first statement (only those take effect)
    offset: int = 0  # of the comment in the text
    end: int = 0  # just past the comment's last character


def directives(text: str) -> list[Directive]:
    """Return every `-- kgmigrate:` comment of `text`; none when it does not scan."""
    return _scan(text)[0]


def no_transaction(text: str) -> bool:
    """Tell whether the file's leading comments (before its first statement) carry
    `-- kgmigrate:no-transaction`: then it runs statement by statement, outside a transaction."""
    return any(d.word == "no-transaction" and d.leading for d in directives(text))


def late_no_transaction(text: str) -> tuple[int, int] | None:
    """Return the offsets of a `no-transaction` directive placed after the first statement (where
    it takes no effect) and of that statement; None when there is none."""
    found, first = _scan(text)
    late = [d for d in found if d.word == "no-transaction" and not d.leading]
    return (late[0].offset, first) if late and first is not None else None


def _scan(text: str) -> tuple[list[Directive], int | None]:
    """Return the directives of `text` and the offset of its first statement (None: none)."""
    if "kgmigrate" not in text.lower():
        return [], None
    try:
        tokens = _parser().scan(text)
    except _parser().ParseError:
        return [], None  # the parse that follows reports it with its location
    lines, out, first = LineMap(text), [], None
    for tok in tokens:
        if tok.name not in _COMMENT_TOKENS:
            if first is None:
                first = tok.start
            continue
        if tok.name != "SQL_COMMENT":
            continue
        comment = text[tok.start:tok.end + 1].rstrip("\n")
        m = _DIRECTIVE_RE.fullmatch(comment)
        if m:
            out.append(Directive(m.group("word").lower(), tuple(m.group("args").split()),
                                 lines.line_of(tok.start), first is None, tok.start,
                                 tok.start + len(comment)))
    return out, first


def problems(found: list[Directive]) -> list[tuple[int, str]]:
    """Return (line, message) for each directive kgmigrate cannot honour as written."""
    out = []
    for d in found:
        if d.word not in KNOWN:
            out.append((d.line, f"unknown directive `kgmigrate:{d.word}` (known: "
                                f"{', '.join(KNOWN)})"))
        elif d.word == "requires" and not d.args:
            out.append((d.line, "`kgmigrate:requires` names nothing: list versions or "
                                "file names, e.g. `-- kgmigrate:requires 012 014_users`"))
        elif d.word == "no-transaction" and d.args:
            out.append((d.line, f"`kgmigrate:no-transaction` takes no words (found "
                                f"{' '.join(d.args)})"))
    return out
