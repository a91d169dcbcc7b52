"""A long generated migration history: tables, indexes, views, functions and triggers, seeded rows,
alters, drops, sequences, types, materialized views, a no-transaction file."""

from __future__ import annotations

from pathlib import Path

NO_TX = "-- kgmigrate: no-transaction\n"


def _table(i: int) -> str:
    return f"hist.t{i:03d}"


def migration(i: int) -> str:
    """Return the text of migration `i` (1-based); each kind builds on earlier files."""
    kind = (i - 2) % 8  # every eighth file from 002 on makes a table the next seven work on
    t = prev = _table(i - kind)
    if i == 1:
        return ("CREATE SCHEMA hist;\n"
                "CREATE TYPE hist.mood AS ENUM ('calm', 'busy');\n"
                "CREATE DOMAIN hist.positive AS integer CHECK (VALUE > 0);\n"
                "CREATE SEQUENCE hist.ticket START 100;\n")
    if kind == 0:
        return (f"CREATE TABLE {t} (id serial PRIMARY KEY, name text NOT NULL, "
                f"mood hist.mood NOT NULL DEFAULT 'calm', qty hist.positive);\n"
                f"INSERT INTO {t} (name, qty) VALUES ('a{i}', 1), ('b{i}', 2), ('c{i}', {i});\n")
    if kind == 2:
        return f"CREATE INDEX t{i:03d}_name ON {prev} (lower(name));\n"
    if kind == 3:
        return (f"CREATE VIEW hist.v{i:03d} AS SELECT id, upper(name) AS shout FROM {prev} "
                f"WHERE qty > 1;\n"
                f"COMMENT ON VIEW hist.v{i:03d} IS 'names of file {i}, shouted';\n")
    if kind == 4:
        return (f"CREATE FUNCTION hist.touch{i:03d}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  NEW.name := NEW.name || '!';\n  RETURN NEW;\nEND;\n$$;\n"
                f"CREATE TRIGGER touch{i:03d} BEFORE INSERT ON {prev}\n"
                f"  FOR EACH ROW EXECUTE FUNCTION hist.touch{i:03d}();\n"
                f"INSERT INTO {prev} (name, qty) VALUES ('via trigger {i}', 5);\n")
    if kind == 5:
        return (f"ALTER TABLE {prev} ADD COLUMN ticket integer NOT NULL "
                f"DEFAULT nextval('hist.ticket');\n"
                f"ALTER TABLE {prev} ADD CONSTRAINT t{i:03d}_qty_small CHECK (qty < 1000);\n"
                f"UPDATE {prev} SET mood = 'busy' WHERE qty > 2;\n")
    if kind == 6:
        return (f"DROP VIEW hist.v{i - 3:03d};\n"
                f"ALTER TABLE {prev} DROP COLUMN mood;\n"
                f"DELETE FROM {prev} WHERE name LIKE 'a%';\n"
                f"CREATE MATERIALIZED VIEW hist.m{i:03d} AS SELECT count(*) AS n FROM {prev};\n")
    if kind == 7:
        return (NO_TX + f"CREATE INDEX CONCURRENTLY t{i:03d}_qty ON {prev} (qty);\n")
    return (f"CREATE TABLE hist.empty{i:03d} (id bigint GENERATED ALWAYS AS IDENTITY, "  # kind 1
            f"ref integer REFERENCES {_table(i - 1)} (id) ON DELETE CASCADE);\n")


def write_history(folder: Path, count: int) -> list[Path]:
    """Write migrations 001..`count` into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, count + 1):
        path = folder / f"{i:03d}_step_{i}.sql"
        path.write_text(f"-- Migration {i:03d}: generated step\n{migration(i)}", encoding="utf-8")
        paths.append(path)
    return paths
