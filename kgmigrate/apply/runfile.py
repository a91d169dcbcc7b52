"""Run one SQL file with the tracking change that goes with it.

A file runs in its own transaction, sent as one query together with its tracking change, or, marked
`-- kgmigrate: no-transaction`, statement by statement with the change recorded after the last.
A file (outside a transaction: a statement) that gave up waiting for a lock is retried
(locks/ddl.py); a failure names the file, line and statement (dberrors.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg
from psycopg import pq

from ..errors import ConnectError, Interrupted, MigrationFailed, one_line
from ..files.sourcemap import LineMap
from ..files.sqltext import Statement
from . import session
from .dberrors import locate
from .locks.ddl import DdlLocks, SessionLockTimeout
from .progress import Reporter
from .wire import failing_statement, run_script

# After the file's own work, its session is reset in its transaction; the notices of our own
# statements that follow are not the file's to show.
OWN_QUIET = "SET LOCAL client_min_messages = warning"


UNDEFINED_TABLE = "42P01"


def tracking_gone(path: Path, exc: psycopg.Error) -> str:
    """Say that the file at `path` removed the tracking table, so its run cannot be recorded."""
    return (f"{path}: ERROR: {exc.diag.message_primary or one_line(exc)}\n"
            f"  The file dropped or renamed kgmigrate's tracking table, so kgmigrate cannot "
            f"record it. If the file removes another tool's table of the same name, keep "
            f"kgmigrate's elsewhere with --table SCHEMA.NAME (KG_MIGRATIONS_TABLE); otherwise "
            f"take that statement out of the file.")


class StatementFailed(Exception):
    """A statement failed: the located message and the statement's index in its file."""

    def __init__(self, message: str, index: int, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message, self.index, self.sqlstate = message, index, sqlstate


def raise_if_lost(conn: psycopg.Connection, exc: psycopg.Error, path: Path) -> None:
    """Raise ConnectError when the connection died: the outcome of `path` is then unknown."""
    if conn.broken or conn.closed:
        raise ConnectError(f"lost the connection while applying {path}: "
                           f"{one_line(exc).rstrip('.')}; run `kgmigrate status` to see whether "
                           f"it was recorded") from None


def run_statements(conn: psycopg.Connection, path: Path, lines: LineMap,
                   statements: list[Statement], ddl: DdlLocks, what: str) -> None:
    """Run each statement on its own; one that gives up on a lock is retried alone."""
    bound = SessionLockTimeout(conn, ddl.policy)
    for i, stmt in enumerate(statements):
        try:
            bound.before(stmt)
            ddl.attempt(f"{what} statement {i + 1} (line {stmt.line})",
                        partial(conn.execute, stmt.sql))
        except KeyboardInterrupt as exc:
            exc.statements_ran = i  # what run_file reports as applied
            raise
        except psycopg.Error as exc:
            raise_if_lost(conn, exc, path)
            raise StatementFailed(locate(exc, path, lines, stmt, 0, statements), i,
                                  exc.sqlstate) from exc
        bound.after(stmt)


def run_transaction(conn: psycopg.Connection, path: Path, lines: LineMap,
                    statements: list[Statement], tail: Sequence[str],
                    head: Sequence[str] = ()) -> None:
    """Run the `head` SQL, the statements, then the `tail` SQL, in one transaction sent as one query."""
    script, starts = "BEGIN;\n" + "".join(f"{sql};\n" for sql in head), []
    for stmt in statements:
        starts.append(len(script))
        script += stmt.sql + "\n;\n"  # the newline ends a trailing -- comment
    script += "".join(f"{sql};\n" for sql in tail) + "COMMIT"
    try:
        outcome = run_script(conn, script)
    except psycopg.Error as exc:
        raise_if_lost(conn, exc, path)
        raise
    if outcome.error is None:
        return
    if conn.info.transaction_status == pq.TransactionStatus.INERROR:
        conn.execute("ROLLBACK")
    # The server's position (in the script) names the statement even when it rejected the whole
    # script before running any of it; else the first results answer our BEGIN and `head`.
    if (outcome.succeeded - 1 - len(head) - len(statements) == len(tail) - 1
            and outcome.error.sqlstate == UNDEFINED_TABLE):
        # Our tracking statement (the tail's last) found no table: the file dropped or renamed it.
        raise StatementFailed(tracking_gone(path, outcome.error), len(statements),
                              outcome.error.sqlstate)
    index = failing_statement(outcome, starts, [len(s.sql) for s in statements],
                              opening=1 + len(head))
    if 0 <= index < len(statements):
        stmt, shift = statements[index], starts[index]
    else:  # at COMMIT (a deferred constraint) or the tracking row: point at the file's end
        end = len(lines.text.rstrip())
        stmt, shift = Statement("COMMIT", end, lines.line_of(end), "COMMIT"), len(script)
    raise StatementFailed(locate(outcome.error, path, lines, stmt, shift, statements), index,
                          outcome.error.sqlstate)


@dataclass(frozen=True)
class SqlFile:
    """A file to run and the tracking change that goes with it."""

    what: str  # how messages name it: "Migration 003 (add_index)"
    path: Path
    lines: LineMap = field(repr=False)
    statements: list[Statement] = field(repr=False)
    transactional: bool
    # The SQL of the tracking change, given the file's run time in ms; None inside the file's
    # own transaction, where the server measures it.
    track: Callable[[int | None], str] = field(repr=False)
    # What a no-transaction file that failed half-way leaves of its tracking change.
    unrecorded: str = "it is not recorded"


def run_file(conn: psycopg.Connection, file: SqlFile, ddl: DdlLocks) -> int:
    """Run `file` with its tracking change; return its run time in ms.

    The next file gets the session a new connection would have (session.py). A failure raises
    MigrationFailed saying what was applied of the file: nothing, or, outside a transaction, which
    statements; Ctrl-C or SIGTERM raises Interrupted saying the same.
    """
    try:
        return _run_file(conn, file, ddl)
    except KeyboardInterrupt as exc:  # the server cancelled the statement (wire.py, psycopg)
        session.roll_back(conn)
        ran = getattr(exc, "statements_ran", 0)
        if file.transactional or not ran:
            said = "was rolled back; nothing of it was applied"
        else:
            said = (f"runs without a transaction: statements 1-{ran} of {len(file.statements)} "
                    f"already ran and stay applied; {file.unrecorded}")
        raise Interrupted(f"{file.path} {said}", exc) from None


def _run_file(conn: psycopg.Connection, file: SqlFile, ddl: DdlLocks) -> int:
    t0 = time.perf_counter()
    if file.transactional:
        tail = [*session.reset_sql(conn), OWN_QUIET, file.track(None)]
        try:
            ddl.attempt(file.what, lambda: run_transaction(
                conn, file.path, file.lines, file.statements, tail, ddl.transaction_head()))
        except StatementFailed as exc:
            raise MigrationFailed(f"{exc.message}\n{ddl.explain(exc)}{file.what} was "
                                  f"rolled back: nothing from it was applied.") from None
        return round((time.perf_counter() - t0) * 1000)
    try:
        run_statements(conn, file.path, file.lines, file.statements, ddl, file.what)
    except StatementFailed as exc:
        total = len(file.statements)
        ran = (f"statements 1-{exc.index} of {total} already ran and stay applied"
               if exc.index else f"no statement of {total} ran")
        raise MigrationFailed(
            f"{exc.message}\n{ddl.explain(exc)}{file.what} runs without a transaction: "
            f"{ran}; {file.unrecorded}. Fix the file (make the statements idempotent, "
            f"e.g. IF NOT EXISTS) and run again.") from None
    ms = round((time.perf_counter() - t0) * 1000)
    session.reset(conn)
    try:
        conn.execute(file.track(ms))
    except psycopg.errors.UndefinedTable as exc:
        raise MigrationFailed(f"{tracking_gone(file.path, exc)}\n{file.what} runs without a "
                              f"transaction: its statements ran and stay applied; "
                              f"{file.unrecorded}.") from None
    return ms


@contextmanager
def notices_to(conn: psycopg.Connection, rep: Reporter) -> Iterator[list[str]]:
    """Forward the server's notices to `rep` while a file runs; yield where to name that file."""
    running: list[str] = []

    def forward(diag: psycopg.errors.Diagnostic) -> None:
        if running:
            rep.notice(running[-1], diag)

    conn.add_notice_handler(forward)
    try:
        yield running
    finally:
        conn.remove_notice_handler(forward)


def run_labelled(conn: psycopg.Connection, running: list[str], label: str, file: SqlFile,
                 ddl: DdlLocks) -> int:
    """Run `file` (run_file) with the server's notices shown under `label`."""
    running.append(label)
    try:
        return run_file(conn, file, ddl)
    finally:
        running.clear()
