"""Split SQL text into statements with PostgreSQL's own parser and scanner (pglast)."""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MigrationFileError
from .psqlmeta import is_dump_guard
from .sourcemap import LineMap, source_error

_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
# squawk's own comment directives, matched as squawk matches them (case-sensitive prefixes).
_LINT_DIRECTIVE_RE = re.compile(r"--\s*squawk-(ignore|disable-assume-in-transaction)\b")

# Top-level transaction control the runner owns: absorbed, the runner opens and commits itself.
_ABSORBED = {"TRANS_STMT_BEGIN", "TRANS_STMT_START", "TRANS_STMT_COMMIT"}
# Savepoints work inside the runner's transaction, so they pass through.
_PASSED = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a file: its SQL and where it starts."""

    sql: str
    offset: int  # character offset of its first token in the file text
    line: int  # 1-based line of its first token
    kind: str  # parse-node name, e.g. CreateStmt


def without_lint_directives(text: str) -> str:
    """Return `text` without the lines of squawk directives among its leading comments.

    `-- squawk-ignore-file RULE -- why` (and the like) only steer the linter; leaving them out of
    the checksum lets an applied file be annotated after a linter upgrade without drift. Only a
    line holding nothing but such a comment, before the first statement, is left out.
    """
    if "squawk-" not in text:
        return text
    try:
        tokens = _parser().scan(text)
    except _parser().ParseError:
        return text
    lines, drop = LineMap(text), set()
    for tok in tokens:  # offsets in characters, the end inclusive
        if tok.name not in _COMMENT_TOKENS:
            break
        start = tok.start
        comment = text[start:tok.end + 1]
        line = lines.line_of(start)
        if (tok.name == "SQL_COMMENT" and _LINT_DIRECTIVE_RE.match(comment)
                and lines.source_line(line).strip() == comment.strip()):
            drop.add(line - 1)
    if not drop:
        return text
    return "\n".join(ln for i, ln in enumerate(text.split("\n")) if i not in drop)


def _meta_command_offset(text: str, error_offset: int) -> int | None:
    """Return the offset of a psql meta-command the parser tripped on, if that is what it was."""
    if 0 <= error_offset < len(text) and text[error_offset] == "\\":
        return error_offset
    return None


def _parser():
    """Return pglast's parser module, imported on first use (status and no-op runs never parse)."""
    from pglast import parser

    return parser


def _char_offsets(text: str) -> Callable[[int], int]:
    """Return a function turning UTF-8 byte offsets of `text` into character offsets."""
    if text.isascii():
        return lambda b: b
    ends = list(itertools.accumulate(len(ch.encode("utf-8")) for ch in text))
    return lambda b: bisect.bisect_right(ends, b)


def _between_statements(text: str, at: int) -> bool:
    """Tell whether `at` starts a line outside every statement: only a `;` or nothing before it."""
    line_start = text.rfind("\n", 0, at) + 1
    if text[line_start:at].strip():
        return False
    try:
        tokens = [t for t in _parser().scan(text[:line_start]) if t.name not in _COMMENT_TOKENS]
    except _parser().ParseError:
        return False
    return not tokens or tokens[-1].name == "ASCII_59"


def _blank_dump_guard(text: str, at: int) -> str | None:
    """Return `text` with the pg_dump `\\restrict` line at `at` blanked (offsets kept), if it is one."""
    end = text.find("\n", at)
    end = len(text) if end < 0 else end
    if not is_dump_guard(text[at:end]) or not _between_statements(text, at):
        return None
    return text[:at] + " " * (end - at) + text[end:]


def _parse(text: str, path: Path, lines: LineMap) -> tuple[list[dict], str]:
    """Parse `text` with PostgreSQL's grammar; a syntax error becomes PATH:LINE.

    Return the statements and the text they index: pg_dump's `\\restrict` lines blanked.
    """
    while True:
        try:
            # The JSON tree is far cheaper than pglast's Python AST and says all we need.
            return json.loads(_parser().parse_sql_json(text)).get("stmts", []), text
        except _parser().ParseError as exc:
            message, pos = exc.args[0], (exc.args[1] if len(exc.args) > 1 else 0)
        offset = max(pos, 0)  # pglast reports a 0-based character offset
        meta = _meta_command_offset(text, offset)
        if meta is not None and (blanked := _blank_dump_guard(text, meta)) is not None:
            text = blanked
            continue
        _refuse_inline_copy(text[:offset], path, lines)
        err = source_error(path, lines, offset)
        if meta is not None:
            cmd = text[meta:].split(None, 1)[0]
            raise MigrationFileError(
                f"{err.location()}: error: psql meta-command {cmd} is not supported; "
                f"kgmigrate runs plain SQL only\n{err.excerpt()}")
        raise MigrationFileError(f"{err.location()}: syntax error: {message}\n{err.excerpt()}")


_CLIENT_COPY = ("error: COPY FROM STDIN / TO STDOUT needs psql to carry the data and is not "
                "supported; use INSERT, or COPY from a file on the server")


def _is_client_copy(kind: str, node: dict) -> bool:
    return kind == "CopyStmt" and not node.get("filename")


def _refuse_inline_copy(head: str, path: Path, lines: LineMap) -> None:
    """Explain a parse error caused by psql-style inline COPY data after `COPY ... FROM stdin;`."""
    try:
        stmts = json.loads(_parser().parse_sql_json(head)).get("stmts", [])
    except _parser().ParseError:
        return
    if stmts:
        (kind, node), = stmts[-1]["stmt"].items()
        if _is_client_copy(kind, node):
            start = _char_offsets(head)(stmts[-1].get("stmt_location", 0))
            err = source_error(path, lines, start)
            raise MigrationFileError(f"{err.location()}: {_CLIENT_COPY}\n{err.excerpt()}")


def split_statements(text: str, path: Path, lines: LineMap | None = None) -> list[Statement]:
    """Parse `text` and return its top-level statements, transaction control absorbed.

    Raises MigrationFileError (with PATH:LINE) for syntax errors, psql meta-commands (but for
    pg_dump's `\\restrict` / `\\unrestrict` lines between statements, skipped), ROLLBACK and other
    transaction control the runner cannot honour.
    """
    lines = lines or LineMap(text)
    raw, text = _parse(text, path, lines)
    to_char = _char_offsets(text)
    end_bytes = len(text.encode("utf-8")) if raw and not text.isascii() else len(text)
    statements: list[Statement] = []
    for rs in raw:
        (kind, node), = rs["stmt"].items()
        b0 = rs.get("stmt_location", 0)
        b1 = b0 + rs["stmt_len"] if rs.get("stmt_len") else end_bytes
        start, end = to_char(b0), to_char(b1)
        if kind == "TransactionStmt" and node.get("kind") not in _PASSED:
            if node.get("kind") in _ABSORBED and not node.get("chain"):
                continue
            err = source_error(path, lines, start)
            word = text[start:end].split(None, 1)[0].upper()
            raise MigrationFileError(
                f"{err.location()}: error: {word} is not allowed in a migration; the runner wraps "
                f"each file in its own transaction (a failing statement already rolls the file back)"
                f"\n{err.excerpt()}")
        if _is_client_copy(kind, node):
            err = source_error(path, lines, start)
            raise MigrationFileError(f"{err.location()}: {_CLIENT_COPY}\n{err.excerpt()}")
        statements.append(Statement(sql=text[start:end], offset=start,
                                    line=lines.line_of(start), kind=kind))
    return statements


def body_offset(sql: str, kind: str) -> int | None:
    """Return where the body of a DO block or CREATE FUNCTION/PROCEDURE starts inside `sql`.

    The body is the string constant after AS (a routine) or the one not naming the LANGUAGE (DO);
    the offset is that of its first character after the opening quote or `$tag$`.
    """
    try:
        tokens = [t for t in _parser().scan(sql) if t.name not in _COMMENT_TOKENS]
    except _parser().ParseError:
        return None
    for prev, tok in zip([None, *tokens], tokens):
        if tok.name != "SCONST":
            continue
        after = prev.name if prev is not None else None
        if (kind == "DoStmt" and after != "LANGUAGE") or (kind != "DoStmt" and after == "AS"):
            literal = sql[tok.start:tok.end + 1]
            if literal.startswith("$"):
                return tok.start + literal.index("$", 1) + 1
            return tok.start + literal.index("'") + 1
    return None


def routine_name(sql: str) -> str | None:
    """Return the unqualified name a CREATE FUNCTION/PROCEDURE statement defines."""
    try:
        stmts = json.loads(_parser().parse_sql_json(sql)).get("stmts", [])
    except _parser().ParseError:
        return None
    node = stmts[0]["stmt"].get("CreateFunctionStmt") if stmts else None
    if not node:
        return None
    return node["funcname"][-1]["String"]["sval"]


def is_absorbed_transaction_control(sql: str) -> bool:
    """Tell whether `sql` is one top-level BEGIN/START/COMMIT/END that the runner absorbs."""
    parsed = parse_one(sql)
    if parsed is None:
        return False
    kind, node = parsed
    return kind == "TransactionStmt" and node.get("kind") in _ABSORBED and not node.get("chain")


def parse_one(sql: str) -> tuple[str, dict] | None:
    """Return the parse node (kind, fields) of one statement; None when it does not parse."""
    try:
        raw = json.loads(_parser().parse_sql_json(sql)).get("stmts", [])
    except _parser().ParseError:
        return None
    if len(raw) != 1:
        return None
    (kind, node), = raw[0]["stmt"].items()
    return kind, node
