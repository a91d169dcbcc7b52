"""Databases built by the old bash runner (psql -f per file) are adopted as they are."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from kgmigrate.files.migrations import file_checksum
from tests.support.kgm import REPO, columns, old_runner, table_exists, tracked
from tests.support.pg import create_database, drop_database

OLD_COLUMNS = ["version", "name", "applied_at"]
OLD_RUNNER_LAST = 3  # migrations after this one were written for kgmigrate


@pytest.fixture
def schema(tmp_path):
    """The project's schema/ folder as the old runner knew it (up to 003), free to edit."""
    dst = tmp_path / "old" / "schema"
    newer = [p.name for p in (REPO / "schema" / "migrations").glob("[0-9]*_*.sql")
             if int(p.name.split("_", 1)[0]) > OLD_RUNNER_LAST]
    shutil.copytree(REPO / "schema", dst, ignore=shutil.ignore_patterns("*.md", *newer))
    return dst


@pytest.mark.slow
def test_old_database_reads_without_being_changed(schema, db_url, db, kgmigrate):
    old_runner(db_url, schema)
    assert columns(db, "public.schema_migrations") == OLD_COLUMNS
    result = kgmigrate("status", "--json", migrations_dir=schema / "migrations")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["current_version"] == 3
    assert [(a["version"], a["name"]) for a in status["applied"]] == [
        (1, "baseline"), (2, "example_add_query_cache"), (3, "add_embedding_config")]
    assert all(a["checksum"] is None and a["execution_ms"] is None for a in status["applied"])
    assert status["pending"] == [] and status["drifted"] == []
    assert columns(db, "public.schema_migrations") == OLD_COLUMNS  # status only reads


def test_up_adopts_adds_columns_and_fills_checksums(schema, db_url, db, kgmigrate):
    old_runner(db_url, schema)
    applied_at = db.execute("SELECT version, applied_at FROM public.schema_migrations "
                            "ORDER BY 1").fetchall()
    result = kgmigrate("up", "-y", migrations_dir=schema / "migrations")
    assert result.exit_code == 0, result.output
    assert "Nothing to do. Current schema version: 003" in result.output
    assert "Baseline" not in result.output  # the database is not fresh
    assert columns(db, "public.schema_migrations") == OLD_COLUMNS + [
        "checksum", "execution_ms", "applied_by", "down_checksum", "applied_order"]
    rows = db.execute("SELECT version, checksum, down_checksum FROM public.schema_migrations "
                      "ORDER BY 1").fetchall()
    for version, checksum, down_checksum in rows:
        path = next(p for p in (schema / "migrations").glob(f"{version:03d}_*.sql")
                    if not p.name.endswith(".down.sql"))
        assert checksum == file_checksum(path)
        # The shipped down files, added after the old runner applied 002 and 003, are adopted.
        down = path.with_name(path.name[:-4] + ".down.sql")
        assert down_checksum == (file_checksum(down) if down.exists() else None)
    assert [r[0] for r in rows] == [1, 2, 3]
    # History is kept as the old runner wrote it.
    assert db.execute("SELECT version, applied_at FROM public.schema_migrations "
                      "ORDER BY 1").fetchall() == applied_at
    # The embedding config the old runner inserted is still the one active row.
    assert db.execute("SELECT count(*) FROM kg_api.embedding_config").fetchone()[0] == 1


def test_adopted_database_takes_new_migrations_and_notices_drift(schema, db_url, db, kgmigrate):
    old_runner(db_url, schema)
    mdir = schema / "migrations"
    assert kgmigrate("up", "-y", migrations_dir=mdir).exit_code == 0
    (mdir / "004_add_notes.sql").write_text("ALTER TABLE kg_api.sessions ADD COLUMN notes TEXT;\n")
    result = kgmigrate("up", "-y", migrations_dir=mdir)
    assert result.exit_code == 0, result.output
    assert "Migration 004 - add_notes (" in result.output
    assert tracked(db) == [1, 2, 3, 4]
    assert "notes" in columns(db, "kg_api.sessions")
    # With checksums recorded, an edit to an adopted file is now drift.
    path = mdir / "002_example_add_query_cache.sql"
    path.write_text(path.read_text().replace("hit_count INTEGER DEFAULT 0",
                                             "hit_count BIGINT DEFAULT 0"))
    result = kgmigrate("up", "-y", migrations_dir=mdir)
    assert result.exit_code == 1
    assert "002_example_add_query_cache.sql" in result.output


def test_old_runner_half_way_is_finished_by_kgmigrate(schema, db_url, db, kgmigrate):
    mdir = schema / "migrations"
    later = mdir / "003_add_embedding_config.sql"
    held_back = later.read_text()
    later.unlink()
    old_runner(db_url, schema)  # the old runner stopped at 002
    later.write_text(held_back)
    result = kgmigrate("up", "-y", migrations_dir=mdir)
    assert result.exit_code == 0, result.output
    assert "Pending: 1 migration(s)" in result.output
    assert tracked(db) == [1, 2, 3]
    # 003 records itself (old format); kgmigrate still adds its checksum and timing.
    row = db.execute("SELECT name, checksum, execution_ms IS NOT NULL "
                     "FROM public.schema_migrations WHERE version = 3").fetchone()
    assert row == ("add_embedding_config", file_checksum(later), True)


def test_fresh_database_gets_the_same_schema_as_the_old_runner(schema, pg_cluster, db_url, db,
                                                             kgmigrate):
    old_url = create_database(pg_cluster)
    try:
        old_runner(old_url, schema)
        assert kgmigrate("up", "-y", migrations_dir=schema / "migrations").exit_code == 0
        query = ("SELECT table_schema, table_name, column_name, data_type, column_default "
                 "FROM information_schema.columns WHERE table_schema LIKE 'kg\\_%' "
                 "ORDER BY 1, 2, 3")
        with psycopg.connect(old_url) as old:
            assert db.execute(query).fetchall() == old.execute(query).fetchall()
    finally:
        drop_database(pg_cluster, old_url)


def test_old_database_reverses_with_the_shipped_down_files(schema, db_url, db, kgmigrate):
    old_runner(db_url, schema)
    mdir = schema / "migrations"
    result = kgmigrate("down", "--to", "1", "-y", migrations_dir=mdir)
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1]
    assert not table_exists(db, "kg_api.embedding_config")
    assert not table_exists(db, "kg_api.query_cache")
    assert kgmigrate("up", "-y", migrations_dir=mdir).exit_code == 0
    assert tracked(db) == [1, 2, 3]
