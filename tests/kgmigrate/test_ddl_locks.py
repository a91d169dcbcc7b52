"""Bounded DDL lock waits on the real server: give up, retry, name the blocker, never stall readers."""

from __future__ import annotations

import threading
import time
from typing import Self

import psycopg
import pytest

from kgmigrate.apply.locks.ddl import DdlLockPolicy
from tests.support.kgm import (
    NO_TX,
    columns,
    env,
    kgmigrate_running,
    run_kgmigrate,
    table_exists,
    tracked,
)
from tests.support.procs import read_until
from tests.support.waiting import join, start_threads, wait_for


@pytest.fixture
def busy(kgmigrate, migrations, db):
    """A table in use: 001 creates it; a test then takes its lock from another session."""
    migrations.add("001_busy.sql", "CREATE TABLE kgt_busy (id BIGINT PRIMARY KEY);\n"
                                   "INSERT INTO kgt_busy SELECT generate_series(1, 100);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    return migrations


@pytest.fixture
def blocker(db_url):
    """A session idle in a transaction that read kgt_busy: it holds ACCESS SHARE until it ends."""
    conn = psycopg.connect(db_url, application_name="kgt-blocker")
    conn.execute("SELECT count(*) FROM kgt_busy").fetchone()
    yield conn
    conn.close()


class Readers:
    """Sessions querying kgt_busy in a loop; remembers the longest single query."""

    def __init__(self, url: str, n: int = 3) -> None:
        self.url, self.n, self.stop, self.worst = url, n, threading.Event(), 0.0

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="kgt-reader") as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                c.execute("SELECT count(*) FROM kgt_busy").fetchone()
                self.worst = max(self.worst, time.perf_counter() - t0)
                time.sleep(0.01)

    def __enter__(self) -> Self:
        self._results, self._threads = start_threads([self._loop] * self.n)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        join(self._threads, 30)

    @property
    def errors(self) -> list[Exception]:
        """What the readers raised (each stops at its first error)."""
        return [r for r in self._results if isinstance(r, Exception)]


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_up_gives_up_retries_names_the_blocker_and_applies_nothing(busy, blocker, db_url, db):
    busy.add("002_alter.sql", "CREATE TABLE kgt_side (x BIGINT);\n"
                              "ALTER TABLE kgt_busy ADD COLUMN note TEXT;\n")
    pid = blocker.info.backend_pid
    with Readers(db_url) as readers:
        time.sleep(0.2)
        proc = run_kgmigrate(db_url, busy.path, "up", "-y", "--ddl-lock-timeout", "0.5",
                             "--retries", "2")
    print(f"worst reader query while the migration waited: {readers.worst * 1000:.0f} ms "
          f"(lock timeout 500 ms)")
    assert not readers.errors
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    retries = [ln for ln in proc.stderr.splitlines() if ln.startswith("Warning: Migration 002")]
    assert len(retries) == 2
    for n, line in enumerate(retries, 1):
        assert "gave up after waiting 0.5 s for an ACCESS EXCLUSIVE lock on kgt_busy" in line
        assert f'held by pid {pid} (application "kgt-blocker", idle in transaction' in line
        assert 'query "SELECT count(*) FROM kgt_busy")' in line
        assert line.endswith(" s") and f"; retry {n} of 2 in " in line
    assert "ERROR: canceling statement due to lock timeout" in proc.stderr
    assert "SQLSTATE: 55P03" in proc.stderr
    assert "Gave up 3 times after waiting 0.5 s each for an ACCESS EXCLUSIVE lock" in proc.stderr
    assert f"SELECT pg_terminate_backend({pid});" in proc.stderr
    assert "Migration 002 (alter) was rolled back: nothing from it was applied." in proc.stderr
    assert tracked(db) == [1]
    assert "note" not in columns(db, "kgt_busy") and not table_exists(db, "kgt_side")


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_blocker_that_commits_during_the_retries_lets_the_migration_through(busy, blocker,
                                                                            db_url, db):
    busy.add("002_alter.sql", "ALTER TABLE kgt_busy ADD COLUMN note TEXT;\n")
    with kgmigrate_running(db_url, busy.path, "up", "-y", "--ddl-lock-timeout", "0.3",
                           "--retries", "20") as proc:
        read_until(proc.stderr, "retry 1 of 20", 90)
        blocker.commit()
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert "✓ Migration 002 - alter" in out
    assert "note" in columns(db, "kgt_busy") and tracked(db) == [1, 2]


@pytest.mark.timeout(120)
def test_no_transaction_file_retries_only_the_statement_that_timed_out(busy, blocker, db_url, db):
    # The CREATE TABLE would fail if it ran twice; it must stay applied and not be retried.
    busy.add("002_split.sql", NO_TX + "CREATE TABLE kgt_once (x BIGINT);\n"
                                      "ALTER TABLE kgt_busy ADD COLUMN note TEXT;\n")
    with kgmigrate_running(db_url, busy.path, "up", "-y", "--ddl-lock-timeout", "0.3",
                           "--retries", "20") as proc:
        retry_line, _ = read_until(proc.stderr, "retry 1 of 20", 90)
        blocker.commit()
        out, err = proc.communicate(timeout=90)
    assert "Migration 002 (split) statement 2 (line 3) gave up after waiting 0.3 s" in retry_line
    assert proc.returncode == 0, out + err
    assert table_exists(db, "kgt_once") and "note" in columns(db, "kgt_busy")
    assert tracked(db) == [1, 2]


def test_each_file_starts_with_the_bound_and_the_file_s_own_setting_wins(kgmigrate, migrations,
                                                                        db):
    probe = "INSERT INTO kgt_probe VALUES ('{}', current_setting('lock_timeout'));\n"
    migrations.add("001_probe.sql", "CREATE TABLE kgt_probe (step TEXT, setting TEXT);\n"
                   + probe.format("001"))
    migrations.add("002_own.sql", probe.format("002 before") + "SET LOCAL lock_timeout = '7s';\n"
                   + probe.format("002 after"))
    migrations.add("003_session_set.sql", "SET lock_timeout = '8s';\n" + probe.format("003"))
    migrations.add("004_next.sql", probe.format("004"))
    migrations.add("005_no_tx.sql", NO_TX + probe.format("005 before")
                   + "SET lock_timeout = '9s';\n"
                   + "CREATE INDEX CONCURRENTLY kgt_probe_step ON kgt_probe (step);\n"
                   + probe.format("005 after"))
    migrations.add("006_no_tx_plain.sql", NO_TX + probe.format("006"))
    result = kgmigrate("up", "-y", "--ddl-lock-timeout", "2.5")
    assert result.exit_code == 0, result.output
    seen = dict(db.execute("SELECT step, setting FROM kgt_probe").fetchall())
    assert seen == {"001": "2500ms", "002 before": "2500ms", "002 after": "7s", "003": "8s",
                    "004": "2500ms", "005 before": "2500ms", "005 after": "9s",
                    "006": "2500ms"}


def test_zero_keeps_the_database_s_own_lock_timeout(migrations, db_url, db):
    db.execute(f"ALTER DATABASE {db.info.dbname} SET lock_timeout = '250ms'")
    migrations.add("001_probe.sql", "CREATE TABLE kgt_probe AS "
                                    "SELECT current_setting('lock_timeout') AS setting;\n")
    migrations.add("002_probe.sql", NO_TX + "INSERT INTO kgt_probe "
                                            "SELECT current_setting('lock_timeout');\n")
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y",
                         environ=env(KG_DDL_LOCK_TIMEOUT="0"))
    assert proc.returncode == 0, proc.stderr
    assert [r[0] for r in db.execute("SELECT setting FROM kgt_probe")] == ["250ms", "250ms"]


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_create_index_concurrently_is_not_cut_short(busy, db_url, db):
    # CONCURRENTLY waits for open writers without blocking anyone; giving up would leave an
    # invalid index behind. It keeps the database's own lock_timeout.
    writer = psycopg.connect(db_url, application_name="kgt-writer")
    writer.execute("INSERT INTO kgt_busy VALUES (1000)")
    busy.add("002_idx.sql", NO_TX + "CREATE INDEX CONCURRENTLY IF NOT EXISTS kgt_busy_id2 "
                                    "ON kgt_busy ((id * 2));\n")
    def waiting_for_a_lock() -> bool:
        assert proc.poll() is None, proc.communicate()
        return db.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE "
                          "application_name = 'kgmigrate' AND wait_event_type = 'Lock')"
                          ).fetchone()[0]

    try:
        with kgmigrate_running(db_url, busy.path, "up", "-y", "--ddl-lock-timeout", "0.2",
                               "--retries", "0") as proc:
            wait_for(waiting_for_a_lock, "kgmigrate to wait for a lock", 60)
            time.sleep(1.0)  # five times the bound: still waiting, not failed
            assert proc.poll() is None
            writer.commit()
            out, err = proc.communicate(timeout=60)
    finally:
        writer.close()
    assert proc.returncode == 0, out + err
    assert db.execute("SELECT indisvalid FROM pg_index "
                      "WHERE indexrelid = 'kgt_busy_id2'::regclass").fetchone()[0]


def test_help_names_the_two_lock_timeouts_apart(kgmigrate):
    text = " ".join(kgmigrate("up", "--help").output.split())
    assert "--lock-timeout SECONDS How long to wait for another kgmigrate runner's migration " \
           "lock (advisory lock; not about table locks, see --ddl-lock-timeout)" in text
    assert "--ddl-lock-timeout SECONDS How long each statement may wait for a table lock" in text
    assert "[env KG_DDL_LOCK_TIMEOUT]" in text and "--retries N" in text


def test_backoff_doubles_with_jitter_and_stops_at_the_cap():
    policy = DdlLockPolicy(backoff_s=0.5, backoff_max_s=4)
    assert [policy.backoff(n, rand=lambda: 1.0) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert [policy.backoff(n, rand=lambda: 0.0) for n in range(1, 6)] == [0.25, 0.5, 1, 2, 2]
