"""Server notices (RAISE NOTICE: a backfill's progress) show on stderr under their file."""

from __future__ import annotations

import os

import psycopg

from tests.support.kgm import kgmigrate_running, run_kgmigrate
from tests.support.procs import read_until

PROGRESS = """
CREATE TABLE kgt_n (x int);
DO $$
BEGIN
  RAISE NOTICE 'backfilled % rows', 1000 USING DETAIL = 'batch 1 of 2', HINT = 'carry on';
  RAISE INFO 'info line';
  RAISE WARNING 'watch out';
END $$;
"""


def test_notices_are_shown_indented_under_their_file_on_stderr(db_url, migrations):
    migrations.add("001_quiet.sql", "CREATE TABLE kgt_q (x int);\n")
    migrations.add("002_backfill.sql", PROGRESS)
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y", "--no-snapshot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "  Migration 002 - backfill:",
        "      NOTICE:  backfilled 1000 rows",
        "      DETAIL:  batch 1 of 2",
        "      HINT:  carry on",
        "      INFO:  info line",
        "      WARNING:  watch out",
    ]
    assert "NOTICE" not in proc.stdout and "Migration 002 - backfill (" in proc.stdout


def test_quiet_hides_notices_but_not_warnings(db_url, migrations):
    migrations.add("001_backfill.sql", PROGRESS)
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y", "--quiet", "--no-snapshot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["  Migration 001 - backfill:", "      WARNING:  watch out"]


def test_own_statements_say_nothing(db_url, migrations, repo_schema):
    """The baseline's tracking table already exists when kgmigrate extends it: no notice of ours."""
    proc = run_kgmigrate(db_url, repo_schema, "up", "-y", "--no-snapshot")
    assert proc.returncode == 0, proc.stderr
    assert "schema_migrations" not in proc.stderr and "already exists" not in proc.stderr


def test_notices_arrive_while_the_file_still_runs(db_url, db, migrations):
    """The file waits on a lock the test holds; its first notice is already on screen."""
    migrations.add("001_slow.sql", "DO $$ BEGIN RAISE NOTICE 'step one done'; END $$;\n"
                                   "SELECT pg_advisory_xact_lock(4242);\n"
                                   "DO $$ BEGIN RAISE NOTICE 'step two done'; END $$;\n")
    with psycopg.connect(db_url, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(4242)")
        with kgmigrate_running(db_url, migrations.path, "up", "-y", "--no-snapshot") as proc:
            try:
                _, seen = read_until(proc.stderr, "step one done", 60)
                assert "      NOTICE:  step one done" in seen
                assert proc.poll() is None and "step two" not in seen
            finally:
                blocker.execute("SELECT pg_advisory_unlock(4242)")
            assert proc.wait(timeout=120) == 0
            assert b"      NOTICE:  step two done" in os.read(proc.stderr.fileno(), 4096)
