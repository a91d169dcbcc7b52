"""Drift (an applied file edited afterwards): status shows it, up refuses, repair accepts it."""

from __future__ import annotations

import json

import pytest

from kgmigrate.files.migrations import file_checksum
from tests.support.kgm import tracked


@pytest.fixture
def applied(kgmigrate, migrations, db):
    """Three applied migrations and a pending fourth."""
    for v in (1, 2, 3):
        migrations.add(f"00{v}_m{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    migrations.add("004_m4.sql", "CREATE TABLE kgt_4 (x INTEGER);\n")
    return migrations


def _edit(migrations, name: str) -> None:
    path = migrations.path / name
    path.write_text(path.read_text() + "-- an afterthought\nCOMMENT ON TABLE kgt_1 IS 'x';\n")


def _recorded(db, version: int) -> str:
    return db.execute("SELECT checksum FROM public.schema_migrations WHERE version = %s",
                      (version,)).fetchone()[0]


def test_status_lists_drifted_files(kgmigrate, applied, db):
    _edit(applied, "002_m2.sql")
    result = kgmigrate("status")
    assert result.exit_code == 0
    assert "  ! Migration 002 - m2" in result.output
    assert "Drifted: 002 changed since applied; `kgmigrate repair` accepts the edits" \
        in result.output
    assert json.loads(kgmigrate("status", "--json").stdout)["drifted"] == [2]


def test_up_refuses_naming_the_files_and_repair(kgmigrate, applied, db):
    _edit(applied, "001_m1.sql")
    _edit(applied, "003_m3.sql")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "applied migration(s) changed since they were applied: 001_m1.sql, 003_m3.sql" \
        in result.output
    assert "kgmigrate repair 1 3" in result.output
    assert tracked(db) == [1, 2, 3]  # the pending 004 was not applied


def test_repair_all_drifted_then_up_runs(kgmigrate, applied, db):
    _edit(applied, "001_m1.sql")
    _edit(applied, "003_m3.sql")
    untouched = _recorded(db, 2)
    result = kgmigrate("repair")
    assert result.exit_code == 0, result.output
    assert "Recorded new checksum(s) for: 001, 003" in result.output
    assert _recorded(db, 1) == file_checksum(applied.path / "001_m1.sql")
    assert _recorded(db, 3) == file_checksum(applied.path / "003_m3.sql")
    assert _recorded(db, 2) == untouched
    assert json.loads(kgmigrate("status", "--json").stdout)["drifted"] == []
    assert kgmigrate("up", "-y").exit_code == 0
    assert tracked(db) == [1, 2, 3, 4]


def test_repair_named_version_only(kgmigrate, applied, db):
    _edit(applied, "001_m1.sql")
    _edit(applied, "002_m2.sql")
    result = kgmigrate("repair", "2")
    assert result.exit_code == 0, result.output
    assert "Recorded new checksum(s) for: 002" in result.output
    assert json.loads(kgmigrate("status", "--json").stdout)["drifted"] == [1]
    assert kgmigrate("up", "-y").exit_code == 1  # 001 still drifted


def test_repair_with_nothing_drifted(kgmigrate, applied, db):
    result = kgmigrate("repair")
    assert result.exit_code == 0
    assert "Nothing to repair" in result.output


def test_repair_of_a_version_not_applied_is_an_error(kgmigrate, applied, db):
    result = kgmigrate("repair", "4")
    assert result.exit_code == 1
    assert "not applied, nothing to repair: 4" in result.output


def test_reverting_the_edit_ends_the_drift(kgmigrate, applied, db):
    path = applied.path / "002_m2.sql"
    original = path.read_text()
    _edit(applied, "002_m2.sql")
    assert kgmigrate("up", "-y").exit_code == 1
    path.write_text(original)
    assert kgmigrate("up", "-y").exit_code == 0


def test_applied_version_without_a_file_is_reported(kgmigrate, applied, db):
    (applied.path / "003_m3.sql").unlink()
    result = kgmigrate("status")
    assert result.exit_code == 0
    assert "applied version(s) without a file: 003" in result.output


def test_dry_run_reports_drift_as_up_would(kgmigrate, applied, db):
    _edit(applied, "001_m1.sql")
    result = kgmigrate("up", "--dry-run")
    assert result.exit_code == 1
    assert "Pending: 1 migration(s)" in result.output
    assert "changed since they were applied: 001_m1.sql" in result.output
