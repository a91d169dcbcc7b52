"""Another tool's schema_migrations is refused untouched; --table keeps kgmigrate's elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.kgm import NO_TX, columns, env, run_kgmigrate, table_exists, tracked

FOREIGN = {
    "golang-migrate": "CREATE TABLE public.schema_migrations (version bigint NOT NULL PRIMARY KEY, "
                      "dirty boolean NOT NULL); INSERT INTO public.schema_migrations "
                      "VALUES (20240101120000, false)",
    "dbmate": "CREATE TABLE public.schema_migrations (version varchar(128) PRIMARY KEY); "
              "INSERT INTO public.schema_migrations VALUES ('20240101120000')",
    "Rails": "CREATE TABLE public.schema_migrations (version varchar PRIMARY KEY); "
             "CREATE TABLE public.ar_internal_metadata (key varchar PRIMARY KEY, value varchar); "
             "INSERT INTO public.schema_migrations VALUES ('20240101120000')",
}


def _snapshot_of(db) -> tuple:
    return (columns(db, "public.schema_migrations"),
            db.execute("SELECT * FROM public.schema_migrations").fetchall())


@pytest.mark.parametrize("tool", list(FOREIGN))
def test_another_tools_table_is_refused_before_anything_changes(tool, kgmigrate, migrations, db):
    for stmt in FOREIGN[tool].split("; "):
        db.execute(stmt)
    before = _snapshot_of(db)
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x int);\n")
    for args in (["up", "-y"], ["status"], ["repair"], ["up", "--dry-run"]):
        result = kgmigrate(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "public.schema_migrations is not kgmigrate's tracking table" in result.output
        assert f"{tool}" in result.output
        assert "--table" in result.output and "001_t.sql" not in result.output
    assert _snapshot_of(db) == before
    assert not table_exists(db, "kgt_t")


def test_table_option_keeps_history_beside_another_tools_table(kgmigrate, migrations, db):
    for stmt in FOREIGN["golang-migrate"].split("; "):
        db.execute(stmt)
    before = _snapshot_of(db)
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x int);\n")
    result = kgmigrate("--table", "kgm.history", "up", "-y")
    assert result.exit_code == 0, result.output
    assert tracked(db, "kgm.history") == [1]
    assert columns(db, "kgm.history") == ["version", "name", "applied_at", "checksum",
                                          "execution_ms", "applied_by", "down_checksum",
                                          "applied_order"]
    assert _snapshot_of(db) == before

    migrations.add("002_u.sql", "CREATE TABLE kgt_u (x int);\n")
    status = json.loads(kgmigrate("--table", "kgm.history", "status", "--json").output)
    assert status["current_version"] == 1 and status["pending"] == [{"version": 2, "name": "u"}]
    migrations.path.joinpath("001_t.sql").write_text("CREATE TABLE kgt_t (x int); -- edited\n")
    assert kgmigrate("--table", "kgm.history", "repair").exit_code == 0
    assert kgmigrate("--table", "kgm.history", "up", "-y").exit_code == 0
    assert tracked(db, "kgm.history") == [1, 2]
    assert _snapshot_of(db) == before


def test_environment_and_quoted_names(db_url, db, migrations):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x int);\n")
    env_name = '"Odd Schema"."History Of ""Migrations"""'
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y", "--no-snapshot",
                         environ=env(KG_MIGRATIONS_TABLE=env_name))
    assert proc.returncode == 0, proc.stderr
    assert tracked(db, env_name) == [1]
    assert not table_exists(db, "public.schema_migrations")
    proc = run_kgmigrate(db_url, migrations.path, "status", environ=env(KG_MIGRATIONS_TABLE=env_name))
    assert "Current version: 001" in proc.stdout


@pytest.mark.parametrize("bad", ["a b", "x; DROP TABLE y", "a.b.c", "", "only x"])
def test_a_table_option_that_is_not_a_table_name_is_a_usage_error(bad, kgmigrate):
    result = kgmigrate("--table", bad, "status")
    assert result.exit_code == 2
    assert "Invalid value for '--table'" in result.output


def test_snapshot_and_restore_read_the_version_from_the_chosen_table(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x int);\n")
    assert kgmigrate("--table", "kgm.history", "up", "-y").exit_code == 0
    db.execute("INSERT INTO kgt_t VALUES (1)")
    result = kgmigrate("--table", "kgm.history", "snapshot")
    assert result.exit_code == 0, result.output
    assert "schema version 001" in result.output
    path = result.output.split("Restore with: kgmigrate restore ")[1].split()[0]
    manifest = json.loads(Path(path + ".json").read_text())
    assert manifest["schema_version"] == 1
    result = kgmigrate("--table", "kgm.history", "restore", "-y", path)
    assert result.exit_code == 0, result.output
    assert "Current schema version:  001" in result.output
    assert "Schema version: 001" in result.output


@pytest.mark.parametrize("statement", [
    "DROP TABLE IF EXISTS schema_migrations;",
    "ALTER TABLE schema_migrations RENAME TO old_schema_migrations;",
], ids=["drop", "rename"])
@pytest.mark.parametrize("no_tx", [False, True], ids=["transaction", "no-transaction"])
def test_a_file_that_removes_the_tracking_table_is_told_so(statement, no_tx, kgmigrate,
                                                          migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x int);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    bad = migrations.add("002_old_tool.sql", (NO_TX if no_tx else "")
                         + "CREATE TABLE kgt_b (x int);\n" + statement + "\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}: ERROR: relation" in result.output
    assert "dropped or renamed kgmigrate's tracking table" in result.output
    assert "--table SCHEMA.NAME" in result.output
    assert "Traceback" not in result.output
    if not no_tx:
        assert "was rolled back: nothing from it was applied" in result.output
        assert tracked(db) == [1] and not table_exists(db, "kgt_b")
