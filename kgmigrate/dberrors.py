"""Turn PostgreSQL errors into compiler-style messages located in the migration file."""

from __future__ import annotations

from pathlib import Path

import psycopg

from .sqltext import LineMap, Statement, source_error

# SQLSTATE 25001: the statement cannot run inside a transaction block.
_IN_TRANSACTION = "25001"


def locate(exc: psycopg.Error, path: Path, lines: LineMap, stmt: Statement, shift: int = 0) -> str:
    """Return `PATH:LINE: ERROR: message` with SQLSTATE, detail, hint, context and the source line.

    `shift` is how many characters preceded the statement in the query the server was sent.
    """
    diag = exc.diag
    offset, with_col = stmt.offset, False
    pos = diag.statement_position
    if pos and pos.isdigit() and 0 < int(pos) - shift <= len(stmt.sql):
        offset, with_col = stmt.offset + int(pos) - shift - 1, True
    err = source_error(path, lines, offset, with_column=with_col)
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    out = [f"{err.location()}: {diag.severity or 'ERROR'}: {message}"]
    if diag.sqlstate:
        out.append(f"  SQLSTATE: {diag.sqlstate}")
    if diag.message_detail:
        out.append(f"  DETAIL: {diag.message_detail}")
    hint = diag.message_hint
    if diag.sqlstate == _IN_TRANSACTION and not hint:
        hint = ("put `-- kgmigrate: no-transaction` in the file's leading comments to run it "
                "statement by statement outside a transaction")
    if hint:
        out.append(f"  HINT: {hint}")
    if diag.context:
        out.append("  CONTEXT: " + diag.context.strip().replace("\n", "\n           "))
    out.append(err.excerpt())
    return "\n".join(out)
