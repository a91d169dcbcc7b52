"""Turn PostgreSQL errors into compiler-style messages located in the migration file."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import psycopg

from ..files.directives import late_no_transaction
from ..files.sourcemap import LineMap, source_error
from ..files.sqltext import Statement, body_offset, routine_name

# SQLSTATE 25001: the statement cannot run inside a transaction block.
_IN_TRANSACTION = "25001"
# One frame of a PL/pgSQL CONTEXT, innermost first (server text, not SQL): at run time
# `PL/pgSQL function f(integer) line 3 at RAISE`, at compile time `compilation of PL/pgSQL
# function "f" near line 3`; a DO block's body is the function `inline_code_block`.
_FRAME = re.compile(r"PL/pgSQL function (?:(?P<schema>[^\s.(\"]+)\.)?\"?(?P<name>[^\s.(\"]+)\"?"
                    r"(?:\([^)]*\))? (?:near )?line (?P<line>\d+)")
_INLINE = "inline_code_block"


def _body_line_offset(lines: LineMap, stmt: Statement, line: int) -> int | None:
    """Return the file offset of line `line` (1-based) of the body of routine or DO `stmt`."""
    start = body_offset(stmt.sql, stmt.kind)
    if start is None:
        return None
    target = lines.line_of(stmt.offset + start) + line - 1
    if target > lines.line_of(stmt.offset + len(stmt.sql)):
        return None
    first = stmt.offset + start
    return first if line == 1 else lines.offset_of_line(target)


def _in_body(exc: psycopg.Error, lines: LineMap, stmt: Statement,
             statements: Sequence[Statement]) -> tuple[int, bool, Statement] | None:
    """Map the innermost PL/pgSQL frame of this file (a DO block, a routine it creates) to an offset."""
    for frame in _FRAME.finditer(exc.diag.context or ""):
        name, line = frame["name"], int(frame["line"])
        if name == _INLINE:
            owner = stmt if stmt.kind == "DoStmt" else None
        else:
            found = [s for s in statements if s.kind == "CreateFunctionStmt"
                     and routine_name(s.sql) == name]
            owner = found[-1] if len(found) == 1 else None
        at = _body_line_offset(lines, owner, line) if owner else None
        if at is None:
            continue
        query, ipos = exc.diag.internal_query, exc.diag.internal_position
        if query and ipos and ipos.isdigit():
            found_at = lines.text.find(query, at, at + len(query) + 4096)
            if found_at >= 0 and 0 < int(ipos) <= len(query):
                return found_at + int(ipos) - 1, True, owner
        line_text = lines.source_line(lines.line_of(at))
        return at + len(line_text) - len(line_text.lstrip()) if line > 1 else at, False, owner
    return None


def _directive_hint(lines: LineMap) -> str:
    late = late_no_transaction(lines.text)
    if late is not None:
        found, first = late
        return (f"the `-- kgmigrate: no-transaction` on line {lines.line_of(found)} comes after "
                f"the first statement (line {lines.line_of(first)}); move it above every statement")
    return ("put `-- kgmigrate: no-transaction` in the file's leading comments to run it "
            "statement by statement outside a transaction")


def locate(exc: psycopg.Error, path: Path, lines: LineMap, stmt: Statement, shift: int = 0,
           statements: Sequence[Statement] = ()) -> str:
    """Return `PATH:LINE: ERROR: message` with SQLSTATE, detail, hint, query, context and the line.

    `shift` is how many characters preceded the statement in the query the server was sent;
    `statements` are the file's, to find the routines a PL/pgSQL CONTEXT names.
    """
    diag = exc.diag
    offset, with_col, owner = stmt.offset, False, stmt
    pos = diag.statement_position
    if pos and pos.isdigit() and 0 < int(pos) - shift <= len(stmt.sql):
        offset, with_col = stmt.offset + int(pos) - shift - 1, True
    elif (inside := _in_body(exc, lines, stmt, statements or [stmt])) is not None:
        offset, with_col, owner = inside
    err = source_error(path, lines, offset, with_column=with_col)
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    out = [f"{err.location()}: {diag.severity or 'ERROR'}: {message}"]
    if diag.sqlstate:
        out.append(f"  SQLSTATE: {diag.sqlstate}")
    if diag.message_detail:
        out.append(f"  DETAIL: {diag.message_detail}")
    hint = diag.message_hint
    if diag.sqlstate == _IN_TRANSACTION and not hint:
        hint = _directive_hint(lines)
    if hint:
        out.append(f"  HINT: {hint}")
    if diag.internal_query:  # psql's QUERY: the statement a PL/pgSQL body or SQL function ran
        out.append("  QUERY: " + diag.internal_query.strip().replace("\n", "\n         "))
    if diag.context:
        out.append("  CONTEXT: " + diag.context.strip().replace("\n", "\n           "))
    if owner is not stmt:  # the body of a routine the file created earlier, called from here
        out.append(f"  CALLED FROM: line {stmt.line}: {stmt.sql.splitlines()[0].strip()}")
    out.append(err.excerpt())
    return "\n".join(out)


# Shown even with `up --quiet`: what only NOTICE, INFO, LOG and DEBUG say may be hidden.
LOUD_SEVERITIES = frozenset({"WARNING"})


def render_notice(diag: psycopg.errors.Diagnostic, indent: str = "    ") -> str:
    """Return a server notice as psql shows it (`NOTICE:  text`, DETAIL, HINT), indented."""
    severity = diag.severity or "NOTICE"
    out = [f"{indent}{severity}:  {diag.message_primary or ''}"]
    for label, text in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint)):
        if text:
            out.append(f"{indent}{label}:  {text}")
    return "\n".join(line.replace("\n", "\n" + indent + "  ") for line in out)


def is_loud(diag: psycopg.errors.Diagnostic) -> bool:
    """Tell whether a notice is shown even when the user asked for quiet (a WARNING)."""
    return (diag.severity_nonlocalized or diag.severity or "") in LOUD_SEVERITIES
