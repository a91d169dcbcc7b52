"""Send a whole transactional file as one simple query and learn which statement failed."""

from __future__ import annotations

import bisect
import select
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.errors import error_from_result


@dataclass
class ScriptOutcome:
    """What the server said about a script: how many statements succeeded, and the error if any."""

    succeeded: int
    error: psycopg.Error | None


def _wait(pgconn: pq.abc.PGconn, read: bool) -> None:
    # select() is interrupted by Ctrl-C (KeyboardInterrupt), unlike a blocking libpq call.
    fd = pgconn.socket
    select.select([fd] if read else [], [] if read else [fd], [])


def _collect(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    while pgconn.flush():
        _wait(pgconn, read=False)
    results = []
    while True:
        while pgconn.is_busy():
            _wait(pgconn, read=True)
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            return results
        results.append(res)


def run_script(conn: psycopg.Connection, script: str) -> ScriptOutcome:
    """Run `script` (several statements) in one round trip on the simple query protocol.

    The server answers each statement in turn and skips the rest after an error, so the count of
    results before the error names the failing statement; its position is relative to `script`.
    """
    pgconn = conn.pgconn
    pgconn.send_query(script.encode(conn.info.encoding))
    try:
        results = _collect(pgconn)
    except KeyboardInterrupt:
        getattr(conn, "cancel_safe", conn.cancel)()
        _collect(pgconn)
        raise
    ok = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
    for i, res in enumerate(results):
        if res.status not in ok:
            if pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError(res.get_error_message(conn.info.encoding))
            return ScriptOutcome(i, error_from_result(res, conn.info.encoding))
    if pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError("the connection was lost")
    return ScriptOutcome(len(results), None)


def failing_statement(outcome: ScriptOutcome, starts: list[int], lengths: list[int],
                      opening: int = 1) -> int:
    """Return the index of the statement that failed in a script of statements at `starts`.

    The error's position, when it has one, is the truth: a statement the server's grammar rejects
    fails the whole script before anything runs, so no result counts up to it. Without a position,
    the results before the error count the statements that ran (the first `opening` answer the
    script's own BEGIN and settings).
    """
    pos = outcome.error.diag.statement_position if outcome.error is not None else None
    if pos and pos.isdigit():
        at = int(pos) - 1  # 1-based, in characters of the script
        i = bisect.bisect_right(starts, at) - 1
        if 0 <= i < len(starts) and at < starts[i] + lengths[i]:
            return i
    return outcome.succeeded - opening
