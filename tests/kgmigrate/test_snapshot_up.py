"""The snapshot offered by `kgmigrate up` before it migrates a database that holds data."""

from __future__ import annotations

import pytest

from tests.support.snapshots import MIGRATION_002, seed, snapshot_files

QUESTION = "Create snapshot before migrating? [Y/n]"


@pytest.fixture
def pending(kgmigrate, migrations, db):
    """A database at version 001 holding rows, with 002 pending."""
    seed(migrations, kgmigrate, db)
    migrations.add("002_later.sql", MIGRATION_002)


def _dumps(tmp_path) -> list[str]:
    return [f for f in snapshot_files(tmp_path / "backups") if f.endswith(".dump")]


def _version(db) -> int:
    return db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


@pytest.mark.parametrize("answer, snapshots", [("y", 1), ("", 1), ("n", 0)])
def test_prompt_answers(answer, snapshots, pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", input=f"{answer}\ny\n")
    assert result.exit_code == 0, result.output
    assert QUESTION in result.output
    assert result.output.index(QUESTION) < result.output.index("Apply 1 migration(s)?")
    assert len(_dumps(tmp_path)) == snapshots
    if snapshots:
        assert "Restore with: kgmigrate restore" in result.output
    assert _version(db) == 2


def test_snapshot_taken_even_if_apply_is_declined(pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", input="y\nn\n")
    assert result.exit_code == 0, result.output
    assert "Nothing applied." in result.output
    assert len(_dumps(tmp_path)) == 1
    assert _version(db) == 1


def test_snapshot_flag_takes_one_without_asking(pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", "-y", "--snapshot")
    assert result.exit_code == 0, result.output
    assert QUESTION not in result.output
    assert len(_dumps(tmp_path)) == 1
    assert _version(db) == 2


def test_no_snapshot_flag_skips_the_question(pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", "--no-snapshot", input="y\n")
    assert result.exit_code == 0, result.output
    assert QUESTION not in result.output
    assert _dumps(tmp_path) == []
    assert _version(db) == 2


def test_yes_alone_takes_no_snapshot(pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert QUESTION not in result.output and _dumps(tmp_path) == []


def test_no_question_when_nothing_is_pending(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    result = kgmigrate("up", input="y\n")
    assert result.exit_code == 0, result.output
    assert QUESTION not in result.output


def test_no_question_when_the_database_holds_no_data(kgmigrate, migrations, db, tmp_path):
    migrations.add("001_app.sql", "CREATE TABLE empty_one (x int);")
    assert kgmigrate("up", "-y").exit_code == 0
    migrations.add("002_more.sql", "CREATE TABLE empty_two (x int);")
    result = kgmigrate("up", input="y\n")
    assert result.exit_code == 0, result.output
    assert QUESTION not in result.output and _dumps(tmp_path) == []


def test_dry_run_takes_no_snapshot(pending, kgmigrate, db, tmp_path):
    result = kgmigrate("up", "--dry-run", "--snapshot")
    assert result.exit_code == 0, result.output
    assert _dumps(tmp_path) == [] and _version(db) == 1


def test_failed_snapshot_applies_nothing(pending, kgmigrate, db, tmp_path):
    (tmp_path / "backups").symlink_to("/dev/null/cannot-be-a-folder")
    result = kgmigrate("up", "-y", "--snapshot")
    assert result.exit_code == 1
    assert "cannot create the folder" in result.output
    assert _version(db) == 1
