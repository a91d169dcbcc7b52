"""Repeatable files: re-applied when they change, after the versioned files of the same `up`."""

from __future__ import annotations

import json

import pytest

from tests.support.kgm import table_exists, tracked

REP_TABLE = "public.schema_migrations_repeatable"


@pytest.fixture
def repeatable(migrations):
    """A writer for <migrations-dir>/../repeatable."""
    folder = migrations.path.parent / "repeatable"
    folder.mkdir()

    def add(name: str, text: str):
        (folder / name).write_text(text)
        return folder / name

    add.folder = folder
    return add


def _recorded(db) -> dict[str, str]:
    return dict(db.execute(f"SELECT name, checksum FROM {REP_TABLE}"))


def _setup(migrations, repeatable) -> None:
    migrations.add("001_users.sql", "CREATE TABLE kgt_users (id INTEGER, name TEXT);\n")
    # name order would run a_names first; it requires b_upper, so b_upper runs first
    repeatable("a_names.sql", "-- kgmigrate:requires b_upper 001\n"
                              "CREATE OR REPLACE VIEW kgt_names AS "
                              "SELECT kgt_upper(name) AS n FROM kgt_users;\n")
    repeatable("b_upper.sql", "CREATE OR REPLACE FUNCTION kgt_upper(t TEXT) RETURNS TEXT "
                              "LANGUAGE sql AS $$ SELECT upper(t) $$;\n")


def test_up_runs_them_after_the_versioned_files_in_requires_then_name_order(
        kgmigrate, migrations, repeatable, db):
    _setup(migrations, repeatable)
    dry = kgmigrate("up", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.index("Repeatable b_upper (new)") < dry.output.index(
        "Repeatable a_names (new)")
    assert not table_exists(db, REP_TABLE)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    out = result.output
    assert (out.index("✓ Migration 001 - users (") < out.index("✓ Repeatable b_upper (")
            < out.index("✓ Repeatable a_names ("))
    assert "Applied: 1 migration(s) and 2 repeatable file(s). Schema version: 001" in out
    assert set(_recorded(db)) == {"a_names", "b_upper"}
    db.execute("INSERT INTO kgt_users VALUES (1, 'ada')")
    assert db.execute("SELECT n FROM kgt_names").fetchone() == ("ADA",)
    assert "Nothing to do" in kgmigrate("up", "-y").output


def test_only_changed_files_rerun_and_status_says_current_changed_new(
        kgmigrate, migrations, repeatable, db):
    _setup(migrations, repeatable)
    assert kgmigrate("up", "-y").exit_code == 0
    before = _recorded(db)
    # trailing blanks and line ends are no change; a new body is
    (repeatable.folder / "b_upper.sql").write_bytes(
        (repeatable.folder / "b_upper.sql").read_bytes().replace(b"\n", b"  \r\n"))
    repeatable("a_names.sql", "-- kgmigrate:requires b_upper 001\n"
                              "CREATE OR REPLACE VIEW kgt_names AS "
                              "SELECT kgt_upper(name) AS n, id FROM kgt_users;\n")
    repeatable("c_grants.sql", "GRANT SELECT ON kgt_names TO PUBLIC;\n")
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert [(r["name"], r["status"]) for r in status["repeatable"]] == [
        ("b_upper", "current"), ("a_names", "changed"), ("c_grants", "new")]
    text = kgmigrate("status").output
    assert "✓ Repeatable b_upper (current)" in text and "→ Repeatable a_names (changed)" in text
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Repeatable b_upper" not in result.output
    assert "Applied: 0 migration(s) and 2 repeatable file(s)" in result.output
    after = _recorded(db)
    assert after["b_upper"] == before["b_upper"] and after["a_names"] != before["a_names"]


def test_a_failing_one_is_located_and_rolled_back(kgmigrate, migrations, repeatable, db):
    _setup(migrations, repeatable)
    bad = repeatable("c_bad.sql", "CREATE VIEW kgt_bad AS SELECT 1;\n\nSELECT * FROM kgt_nope;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:3" in result.output and 'relation "kgt_nope" does not exist' in result.output
    assert "Repeatable c_bad was rolled back: nothing from it was applied." in result.output
    assert not table_exists(db, "kgt_bad") and tracked(db) == [1]
    assert set(_recorded(db)) == {"a_names", "b_upper"}
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert status["repeatable"][-1] == {"name": "c_bad", "status": "new", "applied_at": None}


def test_a_versioned_file_may_not_require_one_and_cycles_are_refused(
        kgmigrate, migrations, repeatable, db):
    _setup(migrations, repeatable)
    migrations.add("002_uses_view.sql", "-- kgmigrate:requires a_names\nSELECT 1;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 2
    assert (f"{migrations.path / '002_uses_view.sql'}:1: requires a_names: a versioned file may "
            f"not require a repeatable file: its result would depend on deploy timing"
            in result.output)
    (migrations.path / "002_uses_view.sql").unlink()
    repeatable("b_upper.sql", "-- kgmigrate:requires a_names\nSELECT 1;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 2
    assert "requires a_names: a cycle (a_names -> b_upper -> a_names)" in result.output
    assert tracked(db) == [] and not table_exists(db, REP_TABLE)


def test_lint_and_graph_cover_them_and_the_folder_is_an_option(
        kgmigrate, migrations, repeatable, db, tmp_path, monkeypatch):
    _setup(migrations, repeatable)
    repeatable("d_drop.sql", "DROP TABLE IF EXISTS kgt_old;\n")
    result = kgmigrate("lint")
    assert result.exit_code == 1
    assert f"{repeatable.folder / 'd_drop.sql'}:1:1: ban-drop-table" in result.output
    assert kgmigrate("graph").output.splitlines() == [
        "001 users",
        "repeatable a_names  requires b_upper, 001",
        "repeatable b_upper",
        "repeatable d_drop"]
    elsewhere = tmp_path / "views"
    elsewhere.mkdir()
    (elsewhere / "v.sql").write_text("CREATE OR REPLACE VIEW kgt_v AS SELECT 1 AS x;\n")
    monkeypatch.setenv("KG_REPEATABLE_DIR", str(elsewhere))
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert set(_recorded(db)) == {"v"} and table_exists(db, "kgt_v")


def test_a_database_without_repeatable_files_gets_no_new_table(kgmigrate, migrations, db):
    migrations.add("001_users.sql", "CREATE TABLE kgt_users (id INTEGER);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    assert not table_exists(db, REP_TABLE)
    assert json.loads(kgmigrate("status", "--json").stdout)["repeatable"] == []
