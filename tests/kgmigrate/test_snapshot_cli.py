"""The snapshot and restore commands: files, failures, --keep, --list, confirmation."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from kgmigrate.errors import ToolError
from kgmigrate.snapshot.dbfacts import DbFacts
from kgmigrate.snapshot.take import take_snapshot
from tests.support.kgm import env, kgmigrate_running
from tests.support.snapshots import (
    MIGRATION_002,
    fingerprint,
    seed,
    snapshot_files,
    take,
)
from tests.support.waiting import wait_for


def test_snapshot_prints_path_and_size(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    result = kgmigrate("snapshot")
    assert result.exit_code == 0, result.output
    files = snapshot_files(tmp_path / "backups")
    assert len(files) == 2
    dump = next(f for f in files if f.endswith(".dump"))
    assert dump.startswith(f"snapshot_{db.info.dbname}_")
    assert f"{dump}.json" in files
    assert "Snapshot:" in result.output and " kB" in result.output
    assert f"Restore with: kgmigrate restore {tmp_path / 'backups' / dump}" in result.output


def test_quiet_prints_only_the_path(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    result = kgmigrate("snapshot", "-q", "-o", str(tmp_path / "mine.sql"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'mine.sql'}\n"
    assert (tmp_path / "mine.sql.json").is_file()
    assert (tmp_path / "mine.sql").read_text().startswith(("--", "\\restrict"))


def test_output_over_an_existing_file_is_refused(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    target = tmp_path / "keep.dump"
    target.write_bytes(b"precious")
    result = kgmigrate("snapshot", "-o", str(target))
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.glob("*keep*")) == ["keep.dump"]


def test_unreachable_database_leaves_no_file(kgmigrate, tmp_path):
    url = "postgresql://postgres@/nowhere?host=/tmp/kg-no-such-socket-dir&port=5"
    result = kgmigrate("snapshot", url=url)
    assert result.exit_code == 1
    assert "No such file or directory" in result.output
    assert snapshot_files(tmp_path / "backups") == []


def test_pg_dump_failure_leaves_no_file_and_reports_its_reason(kgmigrate, migrations, db,
                                                              db_url, tmp_path):
    """pg_dump itself fails (no right to read a table): exit 1, its reason, nothing left."""
    role = f"kgsnap_weak_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        seed(migrations, kgmigrate, db)
        db.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {0}; GRANT SELECT ON "
                           "schema_migrations TO {0}").format(sql.Identifier(role)))
        url = db_url.replace("postgres@", f"{role}@")
        result = kgmigrate("snapshot", url=url)
        assert result.exit_code == 1
        assert "pg_dump failed" in result.output
        assert "permission denied" in result.output
        assert snapshot_files(tmp_path / "backups") == []
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(sql.Identifier(role),
                                                                   sql.Identifier(role)))


def test_interrupted_snapshot_leaves_nothing(migrations, kgmigrate, db, db_url, tmp_path):
    """SIGTERM while pg_dump waits on a lock: the process exits, no snapshot_* file remains."""
    seed(migrations, kgmigrate, db)
    backups = tmp_path / "backups"
    with psycopg.connect(db_url) as locker:
        locker.execute("LOCK TABLE app.things IN ACCESS EXCLUSIVE MODE")
        with kgmigrate_running(db_url, None, "--backups-dir", str(backups), "snapshot",
                               stderr=subprocess.STDOUT) as proc:
            wait_for(lambda: db.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                        "wait_event_type = 'Lock' AND datname = "
                                        "current_database()").fetchone()[0],
                     "pg_dump to reach the lock", 60)
            assert any(p.name.startswith(".kgmigrate-partial-") for p in backups.iterdir())
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert "Interrupted by SIGTERM." in out
    assert snapshot_files(backups) == []


def test_unreadable_tracking_table_is_one_clear_line(kgmigrate, migrations, db, db_url):
    role = f"kgsnap_none_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        seed(migrations, kgmigrate, db)
        result = kgmigrate("snapshot", url=db_url.replace("postgres@", f"{role}@"))
        assert result.exit_code == 1
        assert "permission denied for table schema_migrations" in result.output
        assert "Traceback" not in result.output
    finally:
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_too_old_pg_dump_is_refused(db_url, tmp_path):
    facts = DbFacts("kg", 99, "99.0", None, 0)
    with pytest.raises(ToolError, match="pg_dump must be version 99 or newer"):
        take_snapshot(db_url, facts, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_keep_deletes_all_but_the_newest(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    backups = tmp_path / "backups"
    made = [take(kgmigrate) for _ in range(3)]
    other = backups / "snapshot_otherdb_20200101_000000.dump"
    other.write_bytes(b"another database's")
    mine = take(kgmigrate, "-o", str(backups / "by-hand.dump"))
    result = kgmigrate("snapshot", "--keep", "2")
    assert result.exit_code == 0, result.output
    newest = next(p for p in backups.glob("snapshot_*.dump")
                  if p not in made and p != other)
    assert "Removed old snapshot" in result.output
    left = snapshot_files(backups)
    assert newest.name in left and made[-1].name in left
    for gone in made[:2]:
        assert gone.name not in left and f"{gone.name}.json" not in left
    assert other.name in left and mine.name in left


def test_keep_zero_is_a_usage_error(kgmigrate):
    assert kgmigrate("snapshot", "--keep", "0").exit_code == 2


def test_list_shows_snapshots_newest_first(kgmigrate, migrations, db, tmp_path):
    backups = tmp_path / "backups"
    result = kgmigrate("restore", "--list")
    assert result.exit_code == 0 and "No snapshots in" in result.output
    seed(migrations, kgmigrate, db)
    first = take(kgmigrate)
    migrations.add("002_later.sql", MIGRATION_002)
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0
    second = take(kgmigrate, "--format", "plain")
    legacy = backups / "backup_from_old_script.sql"
    legacy.write_text("-- old\n")
    old = dt.datetime(2020, 1, 1).timestamp()
    os.utime(legacy, (old, old))

    result = kgmigrate("restore", "--list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [ln for ln in lines if ln.startswith(("snapshot_", "backup_"))]
    assert [r.split()[0] for r in rows] == [second.name, first.name, legacy.name]
    assert " 002 " in f"{rows[0]} " and " 001 " in f"{rows[1]} "
    assert db.info.dbname in rows[0]
    assert "unverified: no manifest" in rows[2]
    assert "2020-01-01" in rows[2]
    assert "unverified" not in rows[0] + rows[1]


def test_restore_asks_and_no_leaves_database_untouched(kgmigrate, migrations, db, db_url):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate)
    migrations.add("002_later.sql", MIGRATION_002)
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0
    current = fingerprint(db)

    result = kgmigrate("restore", str(path), input="n\n")
    assert result.exit_code == 0, result.output
    assert f"Database:  {db_url}" in result.output
    assert "Current schema version:  002" in result.output
    assert "Snapshot schema version: 001" in result.output
    assert "all current data" in result.output and "will be replaced" in result.output
    assert "Restore the snapshot? [y/N]" in result.output
    assert "Nothing restored." in result.output
    assert fingerprint(db) == current

    result = kgmigrate("restore", path.name, input="y\n")  # found in the backups folder
    assert result.exit_code == 0, result.output
    assert "Schema version: 001" in result.output


@pytest.mark.parametrize("args, code, text", [
    ((), 2, "missing FILE"),
    (("--list", "x.dump"), 2, "--list takes no FILE"),
    (("nope.dump",), 1, "no such snapshot file"),
])
def test_restore_bad_input(kgmigrate, args, code, text):
    result = kgmigrate("restore", *args)
    assert result.exit_code == code
    assert text in result.output


def test_restore_of_garbage_without_manifest_is_refused(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    bad = tmp_path / "garbage.dump"
    bad.write_bytes(b"PGDMP" + os.urandom(200))
    result = kgmigrate("restore", "-y", "--unverified", str(bad))
    assert result.exit_code == 1
    assert "pg_restore --list cannot read the file" in result.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 5


def test_restore_waits_for_a_running_migration(kgmigrate, migrations, db, db_url, tmp_path):
    """Restore takes the migration lock: it starts only once a concurrent `up` lets go."""
    from kgmigrate.apply.locks.runner import LOCK_KEY

    seed(migrations, kgmigrate, db)
    path = take(kgmigrate)
    db.execute("INSERT INTO app.things (t) VALUES ('after the snapshot')")
    with psycopg.connect(db_url, autocommit=True) as runner:
        runner.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        with kgmigrate_running(db_url, None, "restore", "-y", str(path), stderr=subprocess.STDOUT,
                               env=env(KG_BACKUPS_DIR=str(tmp_path / "backups"))) as proc:
            wait_for(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                        "'advisory' AND NOT granted").fetchone()[0],
                     "restore to wait for the lock", 60)
            assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 6
            runner.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 5
