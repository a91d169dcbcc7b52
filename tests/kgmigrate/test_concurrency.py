"""Runners racing on one database, a held lock, and a runner killed with SIGKILL mid-migration."""

from __future__ import annotations

import json
import signal

import pytest

from kgmigrate.apply.locks.runner import LOCK_KEY
from tests.support.kgm import (
    kgmigrate_proc,
    run_kgmigrate,
    runner_sleeping,
    table_exists,
    tracked,
)
from tests.support.waiting import wait_for

RUNNERS = 6


@pytest.mark.slow
def test_six_runners_at_once_apply_each_migration_exactly_once(migrations, db_url, db):
    # Every file logs itself without ON CONFLICT: running one twice leaves two log rows.
    migrations.baseline("CREATE SCHEMA kg_api;\n"
                        "CREATE TABLE kg_api.kgt_log (what TEXT NOT NULL);\n"
                        "INSERT INTO kg_api.kgt_log VALUES ('baseline');\n")
    migrations.add("001_slow.sql", "SELECT pg_sleep(0.5);\n"
                                   "INSERT INTO kg_api.kgt_log VALUES ('001');\n")
    for v in range(2, 6):
        migrations.add(f"00{v}_m{v}.sql", f"CREATE TABLE kg_api.kgt_{v} (x INTEGER);\n"
                                          f"INSERT INTO kg_api.kgt_log VALUES ('00{v}');\n")
    procs = [kgmigrate_proc(db_url, migrations.path, "up", "-y") for _ in range(RUNNERS)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in err
    log = [r[0] for r in db.execute("SELECT what FROM kg_api.kgt_log ORDER BY what")]
    assert log == ["001", "002", "003", "004", "005", "baseline"]
    assert tracked(db) == [1, 2, 3, 4, 5]
    applied_lines = sum(out.count("✓ Migration 003") for out, _ in outputs)
    assert applied_lines == 1
    # Runners that planned the work but found it done after the lock say so.
    for out, _ in outputs:
        said = ["✓ Migration" in out, "Another runner applied them meanwhile." in out,
                "Nothing to do." in out]
        assert said.count(True) == 1, out


def test_lock_timeout_names_the_pid_holding_the_lock(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    holder = db.info.backend_pid
    result = kgmigrate("up", "-y", "--lock-timeout", "0.5")
    assert result.exit_code == 1
    assert (f"timed out after 0.5 s waiting for the migration lock, held by pid {holder}"
            in result.output)
    assert "Traceback" not in result.output
    assert not table_exists(db, "kgt_a")

    result = kgmigrate("repair", "--lock-timeout", "0")
    assert result.exit_code == 1
    assert f"the migration lock is held by pid {holder}" in result.output

    db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    assert kgmigrate("up", "-y", "--lock-timeout", "0.5").exit_code == 0
    assert tracked(db) == [1]


def test_status_and_dry_run_do_not_wait_for_the_lock(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    assert json.loads(kgmigrate("status", "--json").stdout)["pending"] == [
        {"version": 1, "name": "a"}]
    assert kgmigrate("up", "--dry-run").exit_code == 0


@pytest.mark.slow
def test_kill_9_mid_migration_leaves_nothing_and_the_next_run_finishes(migrations, db_url, db):
    db.execute("CREATE TABLE kgt_control (sleep_s FLOAT NOT NULL)")
    db.execute("INSERT INTO kgt_control VALUES (600)")
    migrations.add("001_quick.sql", "CREATE TABLE kgt_quick (x INTEGER);\n")
    migrations.add("002_long.sql", "CREATE TABLE kgt_long (x INTEGER);\n"
                                   "INSERT INTO kgt_long VALUES (1);\n"
                                   "SELECT pg_sleep((SELECT sleep_s FROM kgt_control));\n")
    proc = kgmigrate_proc(db_url, migrations.path, "up", "-y")
    try:
        wait_for(lambda: runner_sleeping(db), "the runner to reach pg_sleep", 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # 001 committed before the kill; 002 is neither applied nor recorded.
    assert tracked(db) == [1]
    assert table_exists(db, "kgt_quick") and not table_exists(db, "kgt_long")

    # The old backend would sleep 600 s holding the lock; the next run must not wait it out.
    db.execute("UPDATE kgt_control SET sleep_s = 0")
    result = run_kgmigrate(db_url, migrations.path, "up", "-y", "--lock-timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert tracked(db) == [1, 2]
    assert db.execute("SELECT x FROM kgt_long").fetchall() == [(1,)]


def test_the_runner_lock_timeout_never_reaches_the_migrations(kgmigrate, migrations, db, db_url):
    # --lock-timeout bounds only the wait for the runner lock; statements get --ddl-lock-timeout,
    # and with 0 the database's own lock_timeout.
    dbname = db.info.dbname
    db.execute(f'ALTER DATABASE "{dbname}" SET lock_timeout = \'4321ms\'')
    migrations.add("001_seen.sql", "CREATE TABLE kgt_seen AS "
                                   "SELECT current_setting('lock_timeout') AS lock_timeout;\n")
    assert kgmigrate("up", "-y", "--lock-timeout", "7", "--ddl-lock-timeout", "0").exit_code == 0
    assert db.execute("SELECT lock_timeout FROM kgt_seen").fetchall() == [("4321ms",)]
    migrations.add("002_seen.sql", "INSERT INTO kgt_seen "
                                   "SELECT current_setting('lock_timeout');\n")
    assert kgmigrate("up", "-y", "--lock-timeout", "7").exit_code == 0
    assert db.execute("SELECT lock_timeout FROM kgt_seen").fetchall() == [("4321ms",), ("5s",)]
