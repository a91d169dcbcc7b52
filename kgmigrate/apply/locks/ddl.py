"""Bounded DDL lock waits: a lock_timeout for each statement, retries after a jittered backoff,
and the name of the session that holds the lock.

A DDL statement that waits for a lock makes every later query on that table wait behind it; with a
short lock_timeout it gives up instead (SQLSTATE 55P03) and the application carries on. The file
(or, outside a transaction, the statement) is then retried. While a statement runs long, a second
connection samples pg_blocking_pids() so the retry line can say who holds the lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ...files.sqltext import Statement, parse_one
from .blockers import BlockerWatch, LockWait, side_connection

if TYPE_CHECKING:
    import psycopg

LOCK_NOT_AVAILABLE = "55P03"
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 5
T = TypeVar("T")


@dataclass(frozen=True)
class DdlLockPolicy:
    """How long one statement may wait for a lock, and how often a file is retried after that."""

    timeout_s: float = DEFAULT_TIMEOUT_S  # 0: the database's own lock_timeout
    retries: int = DEFAULT_RETRIES
    backoff_s: float = 0.5  # the first retry waits 0.25-0.5 s, then twice as long each time
    backoff_max_s: float = 10.0

    @property
    def bounded(self) -> bool:
        return self.timeout_s > 0

    def setting(self) -> str:
        """Return the lock_timeout value, in ms."""
        return f"{max(round(self.timeout_s * 1000), 1)}ms"

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Return the pause before retry number `retry` (1-based): half to all of a doubling step."""
        step = min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return step * (0.5 + 0.5 * rand())


@dataclass(frozen=True)
class RetryNotice:
    """One retry about to happen, for the caller to print."""

    what: str
    retry: int
    retries: int
    delay_s: float
    policy: DdlLockPolicy
    wait: LockWait | None

    def line(self) -> str:
        return (f"{self.what} {_gave_up(self.policy, self.wait)}; "
                f"retry {self.retry} of {self.retries} in {self.delay_s:.1f} s")


def _gave_up(policy: DdlLockPolicy, wait: LockWait | None, tries: int = 1) -> str:
    each = (f" {policy.timeout_s:g} s" if policy.bounded else "") + (" each" if tries > 1 else "")
    times = f" {tries} times" if tries > 1 else ""
    held = wait.describe() if wait else "a lock (its holder let go before it was seen)"
    return f"gave up{times} after waiting{each} for {held}"


def sqlstate_of(exc: BaseException) -> str | None:
    """Return the SQLSTATE an error carries (psycopg errors and the engine's located failures)."""
    return getattr(exc, "sqlstate", None)


class DdlLocks:
    """One run's bounded lock waits: what to SET, retries with backoff, who was in the way.

    Built for `up`; `down` runs its files through the same `attempt()`.
    """

    def __init__(self, conn: psycopg.Connection, policy: DdlLockPolicy,
                 on_retry: Callable[[RetryNotice], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self._on_retry = on_retry or (lambda notice: None)
        self._sleep = sleep
        delay = min(0.5, policy.timeout_s / 4) if policy.bounded else 1.0
        self._watch = BlockerWatch(lambda: side_connection(conn), conn.info.backend_pid,
                                   delay_s=delay, every_s=min(max(delay / 2, 0.05), 0.5))
        self.last_wait: LockWait | None = None
        self.attempts = 0

    def transaction_head(self) -> list[str]:
        """Return the SQL that opens each file's transaction: its lock wait bound."""
        return [f"SET LOCAL lock_timeout = '{self.policy.setting()}'"] if self.policy.bounded else []

    def attempt(self, what: str, run: Callable[[], T]) -> T:
        """Call `run`; after a lock timeout wait a jittered backoff and call it again."""
        retry = 0
        while True:
            with self._watch.watching():
                try:
                    return run()
                except Exception as exc:
                    if sqlstate_of(exc) != LOCK_NOT_AVAILABLE:
                        raise
                    failure = exc
            self.last_wait, self.attempts = self._watch.seen, retry + 1
            if retry >= self.policy.retries:
                raise failure
            retry += 1
            delay = self.policy.backoff(retry)
            self._on_retry(RetryNotice(what, retry, self.policy.retries, delay, self.policy,
                                       self.last_wait))
            self._sleep(delay)

    def explain(self, exc: BaseException, again: str = "kgmigrate up") -> str:
        """Return the lines that say why a lock timeout stopped the run, or '' for other errors."""
        if sqlstate_of(exc) != LOCK_NOT_AVAILABLE:
            return ""
        pids = [b.pid for b in self.last_wait.blockers] if self.last_wait else []
        end = (f"end that session (SELECT pg_terminate_backend({pids[0]});) or run "
               if len(pids) == 1 else "end the sessions named or run " if pids else "run ")
        said = _gave_up(self.policy, self.last_wait, self.attempts)
        return (f"{said[0].upper()}{said[1:]}.\n"
                f"  HINT: {end}`{again}` again later (or raise --ddl-lock-timeout/--retries).\n")

    def close(self) -> None:
        self._watch.close()


class SessionLockTimeout:
    """Bound lock waits statement by statement in a file that runs outside a transaction.

    Statements that run CONCURRENTLY keep the database's lock_timeout: they block no reads or
    writes while they wait, and giving up half way leaves an invalid index behind. Once the file
    sets lock_timeout itself, its setting wins for the rest of the file. The session reset after
    the file (session.py) gives the next one the database's setting back.
    """

    def __init__(self, conn: psycopg.Connection, policy: DdlLockPolicy) -> None:
        self._conn, self._policy = conn, policy
        self._current: str | None = None  # what we SET; None: the session's own value
        self._user = False

    def before(self, stmt: Statement) -> None:
        if self._user or not self._policy.bounded:
            return
        want = None if runs_concurrently(stmt) else self._policy.setting()
        if want != self._current:
            self._conn.execute("RESET lock_timeout" if want is None
                               else f"SET lock_timeout = '{want}'")
            self._current = want

    def after(self, stmt: Statement) -> None:
        if sets_lock_timeout(stmt):
            self._user = True


def runs_concurrently(stmt: Statement) -> bool:
    """Tell whether `stmt` is CREATE/DROP INDEX, REINDEX or DETACH PARTITION ... CONCURRENTLY."""
    if stmt.kind not in ("IndexStmt", "DropStmt", "ReindexStmt", "AlterTableStmt"):
        return False
    parsed = parse_one(stmt.sql)
    if parsed is None:
        return False
    kind, node = parsed
    if kind in ("IndexStmt", "DropStmt"):
        return bool(node.get("concurrent"))
    if kind == "ReindexStmt":
        return any(p.get("DefElem", {}).get("defname") == "concurrently"
                   for p in node.get("params", []))
    return any(c.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd", {}).get("concurrent")
               for c in node.get("cmds", []))


def sets_lock_timeout(stmt: Statement) -> bool:
    """Tell whether `stmt` is SET/RESET lock_timeout (or RESET ALL)."""
    if stmt.kind != "VariableSetStmt":
        return False
    parsed = parse_one(stmt.sql)
    if parsed is None:
        return False
    node = parsed[1]
    return node.get("name") == "lock_timeout" or node.get("kind") == "VAR_RESET_ALL"
