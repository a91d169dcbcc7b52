"""`kgmigrate mark` / `unmark`: record or forget versions without running any file."""

from __future__ import annotations

import pytest

from kgmigrate.apply.locks.runner import LOCK_KEY
from kgmigrate.files.migrations import file_checksum
from tests.support.kgm import NO_TX, table_exists, tracked


@pytest.fixture
def three(migrations):
    for v in range(1, 4):
        migrations.add(f"00{v}_t{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n")
    migrations.add("002_t2.down.sql", "DROP TABLE kgt_2;\n")
    return migrations


def test_mark_records_without_running_and_up_goes_on_from_there(kgmigrate, three, db):
    db.execute("CREATE TABLE kgt_1 (x INTEGER)")  # built by hand
    result = kgmigrate("mark", "1", input="y\n")
    assert "Record 1 migration(s) as applied without running them? [y/N]" in result.output
    assert "Marked as applied (not run): 001" in result.output
    row = db.execute("SELECT checksum, applied_by FROM public.schema_migrations").fetchone()
    assert row[0] == file_checksum(three.path / "001_t1.sql") and row[1].endswith(" mark")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output  # 001 was not run again: no "already exists"
    assert tracked(db) == [1, 2, 3]


def test_mark_through_records_every_pending_version_up_to_n(kgmigrate, three, db):
    result = kgmigrate("mark", "--through", "2", "-y")
    assert result.exit_code == 0, result.output
    assert "Marked as applied (not run): 001, 002" in result.output
    assert tracked(db) == [1, 2] and not table_exists(db, "kgt_1")
    down = db.execute("SELECT down_checksum FROM public.schema_migrations WHERE version = 2")
    assert down.fetchone()[0] == file_checksum(three.path / "002_t2.down.sql")
    assert "Nothing to mark" in kgmigrate("mark", "--through", "2", "-y").output
    assert "Nothing to mark: version 001 is already applied" in kgmigrate("mark", "1", "-y").output


def test_mark_refuses_a_version_without_file_and_no_answer_changes_nothing(kgmigrate, three, db):
    result = kgmigrate("mark", "7", "-y")
    assert result.exit_code == 1
    assert "no migration file for version 007" in result.output
    assert kgmigrate("mark", "1", input="n\n").output.endswith("Nothing marked.\n")
    assert tracked(db) == []
    assert kgmigrate("mark").exit_code == 2
    assert kgmigrate("mark", "1", "--through", "2").exit_code == 2


def test_unmark_forgets_without_running_and_up_runs_it_again(kgmigrate, three, db):
    assert kgmigrate("up", "-y").exit_code == 0
    result = kgmigrate("unmark", "3", input="y\n")
    assert "Forget migration 003 without reversing it? [y/N]" in result.output
    assert "Unmarked: 003" in result.output
    assert tracked(db) == [1, 2] and table_exists(db, "kgt_3")  # nothing was run
    result = kgmigrate("unmark", "3", "-y")
    assert result.exit_code == 1
    assert "version 003 is not recorded as applied" in result.output


def test_recover_from_a_no_transaction_file_that_failed_half_way(kgmigrate, migrations, db):
    migrations.add("001_ix.sql", NO_TX + "CREATE TABLE kgt_a (x INTEGER);\nSELECT 1 / 0;\n")
    assert kgmigrate("up", "-y").exit_code == 1
    assert tracked(db) == [] and table_exists(db, "kgt_a")  # half applied, not recorded
    # The operator finishes the work by hand, then records the file.
    assert kgmigrate("mark", "1", "-y").exit_code == 0
    assert tracked(db) == [1]
    assert kgmigrate("status").exit_code == 0


def test_mark_and_unmark_take_the_lock(kgmigrate, three, db):
    db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    for args in (("mark", "1", "-y"), ("unmark", "1", "-y")):
        if args[0] == "unmark":
            db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            assert kgmigrate("mark", "1", "-y").exit_code == 0
            db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = kgmigrate(*args, "--lock-timeout", "0")
        assert result.exit_code == 1
        assert "the migration lock is held by pid" in result.output
    assert tracked(db) == [1]
    db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
