"""`kgmigrate up`: its output, the prompt, --dry-run, --target and the baseline."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kgmigrate.files.migrations import checksum
from kgmigrate.settings import Settings
from tests.support.kgm import (
    AnswerAfter,
    table_exists,
    tracked,
    user_relations,
    user_schemas,
)


@pytest.fixture
def three(migrations):
    """Three small migrations, 001-003."""
    migrations.add("001_first.sql", "CREATE TABLE kgt_1 (x INTEGER);\n")
    migrations.add("002_second.sql", "CREATE TABLE kgt_2 (x INTEGER);\n")
    migrations.add("003_add_embedding_config.sql", "CREATE TABLE kgt_3 (x INTEGER);\n")
    return migrations


def test_output_lists_plan_applied_files_and_summary(kgmigrate, three, db):
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("kgmigrate ") and "apply migrations" in lines[0]
    assert "Applied: 0 migration(s)" in lines
    assert "Pending: 3 migration(s)" in lines
    assert "  → Migration 003 - add_embedding_config" in lines
    applied = [ln for ln in lines if ln.startswith("  ✓ Migration")]
    assert [ln.split(" (")[0] for ln in applied] == [
        "  ✓ Migration 001 - first", "  ✓ Migration 002 - second",
        "  ✓ Migration 003 - add_embedding_config"]
    assert all(ln.endswith(" ms)") for ln in applied)
    assert lines[-1] == "Applied: 3 migration(s). Schema version: 003"
    assert tracked(db) == [1, 2, 3]


def test_nothing_to_do(kgmigrate, three, db):
    kgmigrate("up", "-y")
    result = kgmigrate("up")
    assert result.exit_code == 0
    assert "Pending: 0 migration(s)" in result.output
    assert "Nothing to do. Current schema version: 003" in result.output
    assert "[y/N]" not in result.output  # nothing to ask


@pytest.mark.parametrize("answer", ["y\n", "yes\n", "Y\n"])
def test_prompt_yes_applies(answer, kgmigrate, three, db):
    result = kgmigrate("up", input=answer)
    assert result.exit_code == 0, result.output
    assert "Apply 3 migration(s)? [y/N]" in result.output
    assert tracked(db) == [1, 2, 3]


@pytest.mark.parametrize("answer", ["n\n", "\n", ""], ids=["no", "default", "eof"])
def test_prompt_no_default_or_eof_applies_nothing_and_exits_0(answer, kgmigrate, three, db):
    result = kgmigrate("up", input=answer)
    assert result.exit_code == 0, result.output
    assert "Apply 3 migration(s)? [y/N]" in result.output
    assert "Nothing applied." in result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert user_relations(db) == []


def test_dry_run_writes_nothing_not_even_the_tracking_table(kgmigrate, three, db):
    three.baseline("CREATE SCHEMA kg_api;\nCREATE TABLE kg_api.kgt_base (x INTEGER);\n")
    next_xid = "SELECT pg_snapshot_xmax(pg_current_snapshot())"
    before = db.execute(next_xid).fetchone()[0]
    result = kgmigrate("up", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output
    assert "Baseline 00_baseline.sql (fresh database)" in result.output
    assert "→ Migration 002 - second" in result.output
    assert "Dry run: nothing was applied. Current schema version: none" in result.output
    assert user_relations(db) == [] and user_schemas(db) == []
    # Nothing was written anywhere: no transaction of the run was given an id.
    assert db.execute(next_xid).fetchone()[0] == before


def test_dry_run_on_a_migrated_database_lists_only_what_is_pending(kgmigrate, three, db):
    kgmigrate("up", "-y", "--target", "1")
    before = user_relations(db)
    result = kgmigrate("up", "--dry-run")
    assert result.exit_code == 0
    assert "Applied: 1 migration(s)" in result.output
    assert "Pending: 2 migration(s)" in result.output
    assert "Migration 001" not in result.output.split("Pending:")[1]
    assert user_relations(db) == before and tracked(db) == [1]


def test_target_stops_after_version_n(kgmigrate, three, db):
    result = kgmigrate("up", "-y", "--target", "2")
    assert result.exit_code == 0, result.output
    assert "Pending: 2 migration(s)" in result.output
    assert "Schema version: 002" in result.output
    assert tracked(db) == [1, 2] and not table_exists(db, "kgt_3")
    result = kgmigrate("up", "-y", "--target", "2")
    assert "Nothing to do. Current schema version: 002" in result.output
    assert kgmigrate("up", "-y").exit_code == 0
    assert tracked(db) == [1, 2, 3]


def test_baseline_applies_to_a_fresh_database_only(kgmigrate, migrations, db):
    migrations.baseline("BEGIN;\nCREATE SCHEMA kg_api;\n"
                        "CREATE TABLE public.schema_migrations (version INTEGER PRIMARY KEY, "
                        "name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT NOW());\n"
                        "INSERT INTO public.schema_migrations (version, name) "
                        "VALUES (1, 'baseline');\nCOMMIT;\n")
    migrations.add("001_baseline.sql", "-- reference only\n")
    migrations.add("002_more.sql", "CREATE TABLE kg_api.kgt_more (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Baseline 00_baseline.sql (" in result.output
    assert tracked(db) == [1, 2]
    # The file for version 1 got its checksum although the baseline recorded it.
    assert db.execute("SELECT checksum IS NOT NULL FROM public.schema_migrations "
                      "WHERE version = 1").fetchone()[0]
    # Not fresh any more: a later run never re-applies the baseline.
    migrations.add("003_last.sql", "CREATE TABLE kg_api.kgt_last (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert "Baseline" not in result.output and tracked(db) == [1, 2, 3]


def test_no_baseline_skips_it(kgmigrate, migrations, db):
    migrations.baseline("CREATE SCHEMA kg_api;\n")
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    result = kgmigrate("--no-baseline", "up", "-y")
    assert result.exit_code == 0, result.output
    assert "kg_api" not in user_schemas(db)
    assert tracked(db) == [1]


def test_no_baseline_from_the_environment(kgmigrate, migrations, db, monkeypatch):
    monkeypatch.setenv("KG_NO_BASELINE", "1")
    migrations.baseline("CREATE SCHEMA kg_api;\n")
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    assert "kg_api" not in user_schemas(db)


def test_baseline_is_not_applied_where_kg_api_exists(kgmigrate, migrations, db):
    db.execute("CREATE SCHEMA kg_api")
    migrations.baseline("CREATE SCHEMA kg_api;\n")  # would fail if it ran
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Baseline" not in result.output and tracked(db) == [1]


def test_the_schema_that_marks_an_untracked_database_is_a_setting(db, db_url, migrations,
                                                                   tmp_path):
    from kgmigrate.apply.plan import make_plan
    from kgmigrate.apply.session import connect

    db.execute("CREATE SCHEMA kgt_app")
    baseline = migrations.baseline("CREATE SCHEMA kgt_app;\n")
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    settings = Settings(database_url=db_url, migrations_dir=migrations.path,
                        backups_dir=tmp_path / "backups")
    assert settings.baseline_schema == "kg_api"
    with connect(db_url, read_only=True) as conn:
        assert make_plan(conn, settings).baseline == baseline  # no kg_api: fresh
        for schema in ("kgt_app", None):
            plan = make_plan(conn, replace(settings, baseline_schema=schema))
            assert plan.baseline == (None if schema else baseline)


def test_up_applies_what_it_showed_when_files_change_at_the_prompt(kgmigrate, migrations, db):
    baseline = migrations.baseline("CREATE SCHEMA kg_api;\nCREATE TABLE kg_api.kgt_shown (x INTEGER);\n")
    shown = "CREATE TABLE kgt_a (x INTEGER);\n"
    first = migrations.add("001_a.sql", shown)

    def edit() -> None:
        baseline.write_text("CREATE TABLE kgt_edited_baseline (x INTEGER);\n")
        first.write_text("CREATE TABLE kgt_edited_1 (x INTEGER);\n")

    result = kgmigrate("up", input=AnswerAfter(b"y\n", edit))
    assert result.exit_code == 0, result.output
    assert "Apply 2 migration(s)?" in result.output
    assert table_exists(db, "kg_api.kgt_shown") and table_exists(db, "kgt_a")
    assert not table_exists(db, "kgt_edited_baseline") and not table_exists(db, "kgt_edited_1")
    recorded = db.execute("SELECT checksum FROM public.schema_migrations WHERE version = 1")
    assert recorded.fetchone()[0] == checksum(shown)


def test_verbose_chatter_goes_to_stderr(kgmigrate, three, db):
    result = kgmigrate("up", "-y", "-v")
    assert result.exit_code == 0
    assert "Waiting for the migration lock" in result.stderr
    assert "001_first.sql (1 statement(s))" in result.stderr
    assert "Waiting" not in result.stdout
