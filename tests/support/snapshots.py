"""Shared by the snapshot tests: awkward seed data, a fingerprint of a database, snapshot files."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

MIGRATION_001 = """
CREATE SCHEMA app;
CREATE TABLE app.things (
    id serial PRIMARY KEY, b bytea, j jsonb, arr text[], n numeric, f double precision,
    t text);
CREATE VIEW app.things_v AS SELECT id, t FROM app.things;
CREATE FUNCTION app.plus_one(x int) RETURNS int LANGUAGE sql AS $$ SELECT x + 1 $$;
"""

MIGRATION_002 = """
CREATE TABLE app.later (id int PRIMARY KEY, note text);
INSERT INTO app.later VALUES (1, 'made after the snapshot');
CREATE SCHEMA extra;
CREATE TABLE extra.stuff (x int);
CREATE FUNCTION app.plus_two(x int) RETURNS int LANGUAGE sql AS $$ SELECT x + 2 $$;
"""

AWKWARD_ROWS = """
INSERT INTO app.things (b, j, arr, n, f, t) VALUES
  ('\\x00ff0a5c27'::bytea, '{"a": [1, "two", null], "q": "it''s; \\"x\\" \\\\ y"}',
   ARRAY['a,b', NULL, 'c"d', '{}', ''], 'NaN', 'NaN',
   E'line1\\nline2\\ttab; DROP TABLE app.things; --'),
  (NULL, NULL, NULL, NULL, NULL, NULL),
  ('', 'null', '{}', 1e-20, '-Infinity', 'ünïcødé 🚀 日本語 \\ back\\slash'),
  ('\\x'::bytea, '[]', ARRAY[NULL]::text[], -0.0, 'Infinity',
   E'''quoted''; "double"; $$dollar$$; \\\\.\\n\\\\.'),
  (decode(repeat('ab', 5000), 'hex'), '{"big": true}', ARRAY['x'], 123456789.123456789,
   1.5e300, repeat('long text ', 2000));
SELECT nextval('app.things_id_seq');
"""


def seed(migrations, kgmigrate, db) -> None:
    """Apply migration 001 and fill it with awkward rows."""
    migrations.add("001_app.sql", MIGRATION_001)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    db.execute(AWKWARD_ROWS)


def fingerprint(conn: psycopg.Connection) -> dict:
    """Return everything a restore must reproduce: schemas, relations, rows, sequences, code."""
    schemas = [r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
        "AND nspname <> 'information_schema' ORDER BY 1")]
    rels = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) "
        "ORDER BY 1, 2", (schemas,)).fetchall()
    data = {}
    for nsp, rel, kind in rels:
        ident = sql.Identifier(nsp, rel)
        if kind == "r":
            data[f"{nsp}.{rel}"] = [r[0] for r in conn.execute(
                sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(ident))]
        elif kind == "S":
            data[f"{nsp}.{rel}"] = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(ident)).fetchone()
    funcs = conn.execute(
        "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s) "
        "ORDER BY 1", (schemas,)).fetchall()
    return {"schemas": schemas, "relations": rels, "data": data, "functions": funcs}


def snapshot_files(folder: Path) -> list[str]:
    """Return the names in `folder` (empty when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def take(kgmigrate, *args: str) -> Path:
    """Run `kgmigrate snapshot -q ...` and return the written path."""
    result = kgmigrate("snapshot", "-q", *args)
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())
