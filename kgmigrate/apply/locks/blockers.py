"""Who holds the lock a session waits for: sampled from a second connection while it waits."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

# Who blocks `pid`, and what `pid` waits for; one statement, cheap enough to run a few times a second.
_BLOCKERS_SQL = """
SELECT a.pid, a.application_name, a.state,
       EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8, left(a.query, 500),
       (SELECT l.mode || ' on ' || COALESCE(l.relation::regclass::text, l.locktype)
          FROM pg_locks l WHERE l.pid = %(pid)s AND NOT l.granted LIMIT 1)
FROM unnest(pg_blocking_pids(%(pid)s)) AS b(pid)
JOIN pg_stat_activity a ON a.pid = b.pid
ORDER BY a.xact_start NULLS LAST, a.pid
"""


@dataclass(frozen=True)
class Blocker:
    """A session that holds (or queues ahead for) a lock we wait for."""

    pid: int
    application: str | None
    state: str | None
    xact_age_s: float | None
    query: str | None

    def describe(self) -> str:
        details = []
        if self.application:
            details.append(f'application "{self.application}"')
        if self.state:
            details.append(self.state)
        if self.xact_age_s is not None:
            details.append(f"transaction open {_age(self.xact_age_s)}")
        if self.query:
            details.append(f'query "{_clip(self.query)}"')
        return f"pid {self.pid}" + (f" ({', '.join(details)})" if details else "")


@dataclass(frozen=True)
class LockWait:
    """What one sample saw: the lock wanted and who stood in the way."""

    wanted: str | None
    blockers: tuple[Blocker, ...]

    def describe(self) -> str:
        """Return 'an ACCESS EXCLUSIVE lock on t, held by pid 42 (...)'."""
        who = "; ".join(b.describe() for b in self.blockers[:3])
        if len(self.blockers) > 3:
            who += f"; and {len(self.blockers) - 3} more"
        return f"{_lock(self.wanted)}, held by {who}" if who else _lock(self.wanted)


def _age(seconds: float) -> str:
    s = max(int(seconds), 0)
    if s < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _clip(query: str, width: int = 60) -> str:
    one = " ".join(query.split())
    return one if len(one) <= width else one[:width - 3] + "..."


def _lock(wanted: str | None) -> str:
    """'AccessExclusiveLock on t' -> 'an ACCESS EXCLUSIVE lock on t'."""
    if not wanted:
        return "a lock"
    mode, _, rest = wanted.partition(" on ")
    name = " ".join(re.findall(r"[A-Z][a-z]*", mode.removesuffix("Lock"))).upper() or mode
    return f"{'an' if name[:1] in 'AEIOU' else 'a'} {name} lock on {rest}"


def side_connection(conn: psycopg.Connection) -> psycopg.Connection:
    """Open a second connection like `conn` (its password included) to watch it."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    extra = {}
    password = conn.pgconn.password
    if password:
        extra["password"] = password.decode()
    side = psycopg.connect(make_conninfo(conn.info.dsn, **extra), autocommit=True,
                           application_name="kgmigrate lock watch", connect_timeout=5)
    side.execute("SET statement_timeout = '2s'")
    return side


class BlockerWatch:
    """Sample, from a second connection opened on demand, who blocks a session while it runs long.

    One thread for the run; `watching()` arms it around a statement. It samples only once the
    statement has run `delay_s`, so quick files never open the second connection.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], pid: int, delay_s: float,
                 every_s: float) -> None:
        self._connect, self._pid = connect, pid
        self._delay, self._every = delay_s, every_s
        self._cv = threading.Condition()
        self._armed_at: float | None = None
        self._gen = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._side: psycopg.Connection | None = None
        self._broken = False
        self.seen: LockWait | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch for the block's duration; afterwards `seen` holds the last blocked sample."""
        with self._cv:
            self._gen += 1
            self.seen = None
            self._armed_at = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kgmigrate-lock-watch",
                                                daemon=True)
                self._thread.start()
            self._cv.notify_all()
        try:
            yield
        finally:
            with self._cv:
                self._armed_at = None
                self._cv.notify_all()

    def _due(self) -> int | None:
        """Under the lock: wait until a sample is due; return its generation, None once closed."""
        while not self._closed:
            if self._armed_at is None:
                self._cv.wait()
                continue
            left = self._armed_at + self._delay - time.monotonic()
            if left <= 0:
                return self._gen
            self._cv.wait(left)
        return None

    def _run(self) -> None:
        while True:
            with self._cv:
                gen = self._due()
            if gen is None:
                return
            wait = self._sample()
            with self._cv:
                current = self._gen == gen and self._armed_at is not None
                if current and wait is not None and wait.blockers:
                    self.seen = wait
                if current and not self._closed:
                    self._cv.wait(self._every)

    def _sample(self) -> LockWait | None:
        if self._broken:
            return None
        try:
            if self._side is None:
                self._side = self._connect()
            rows = self._side.execute(_BLOCKERS_SQL, {"pid": self._pid}).fetchall()
        except Exception:  # noqa: BLE001 - watching is best effort; the migration goes on
            self._broken = True
            return None
        blockers = tuple(Blocker(r[0], r[1] or None, r[2] or None, r[3], r[4] or None)
                         for r in rows)
        return LockWait(rows[0][5] if rows else None, blockers)

    def close(self) -> None:
        """Stop the thread and close the second connection."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._side is not None:
            self._side.close()
