"""Each file starts with the session a new connection would have; the migration lock stays held."""

from __future__ import annotations

import subprocess

from kgmigrate.postgres.programs import find_binary
from tests.support.kgm import table_exists, tracked

# Fails the file unless the session is as new: default search_path, role, time zone, no temp table.
ASSERT_CLEAN = """
DO $$
BEGIN
  IF current_setting('search_path') <> '"$user", public' THEN
    RAISE EXCEPTION 'search_path leaked: %', current_setting('search_path');
  END IF;
  IF current_user <> session_user THEN RAISE EXCEPTION 'role leaked: %', current_user; END IF;
  IF current_setting('TimeZone') = 'Asia/Tokyo' THEN RAISE EXCEPTION 'time zone leaked'; END IF;
  IF to_regclass('pg_temp.scratch') IS NOT NULL THEN RAISE EXCEPTION 'temp table leaked'; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND pid = pg_backend_pid()) THEN
    RAISE EXCEPTION 'the migration lock was released';
  END IF;
END $$;
"""

DIRTY = """
SELECT pg_catalog.set_config('search_path', '', false);
SET TIME ZONE 'Asia/Tokyo';
CREATE TEMP TABLE scratch (x int);
SET ROLE kgm_session_role;
SET default_transaction_read_only = on;
"""


def test_settings_of_one_file_do_not_reach_the_next(kgmigrate, migrations, db):
    db.execute("DO $$ BEGIN CREATE ROLE kgm_session_role; EXCEPTION WHEN duplicate_object THEN "
               "NULL; END $$")
    migrations.add("001_dirty.sql", DIRTY)
    migrations.add("002_plain_create.sql", "CREATE TABLE made_in_public (x int);\n" + ASSERT_CLEAN)
    migrations.add("003_dirty_again.sql", "-- kgmigrate: no-transaction\n" + DIRTY)
    migrations.add("004_check.sql", ASSERT_CLEAN)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1, 2, 3, 4]
    assert table_exists(db, "public.made_in_public")


def test_migration_made_from_a_pg_dump_schema_dump(kgmigrate, migrations, db, db_url):
    """pg_dump output empties search_path; the next file still creates in public."""
    db.execute("CREATE SCHEMA app")
    db.execute("CREATE TABLE app.items (id serial PRIMARY KEY, name text)")
    db.execute("CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
               "BEGIN\n  RETURN NEW;\nEND;\n$$")
    dump = subprocess.run([str(find_binary("pg_dump")), "--schema-only", "-d", db_url],
                          capture_output=True, text=True, check=True).stdout
    assert "SELECT pg_catalog.set_config('search_path', '', false);" in dump
    db.execute("DROP SCHEMA app CASCADE")
    # A migration is plain SQL: pg_dump's \restrict lines are psql's, not the server's.
    sql = "\n".join(ln for ln in dump.splitlines() if not ln.startswith("\\"))
    migrations.add("001_from_dump.sql", sql)
    migrations.add("002_next.sql", "CREATE TABLE after_dump (id int);\n"
                                   "INSERT INTO app.items (name) VALUES ('x');\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert table_exists(db, "public.after_dump")
    assert db.execute("SELECT name FROM app.items").fetchall() == [("x",)]
