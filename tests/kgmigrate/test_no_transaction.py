"""Files marked `-- kgmigrate: no-transaction` run statement by statement outside a transaction."""

from __future__ import annotations

from tests.support.kgm import table_exists, tracked

HEADER = "-- Migration 002: concurrent index\n-- kgmigrate: no-transaction\n\n"


def test_create_index_concurrently_runs_and_is_recorded(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")
    migrations.add("002_idx.sql", HEADER + "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n"
                                           "CREATE INDEX CONCURRENTLY kgt_t_x2 ON kgt_t ((x * 2));\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Migration 002 - idx  [no-transaction]" in result.output
    assert table_exists(db, "kgt_t_x") and table_exists(db, "kgt_t_x2")
    assert tracked(db) == [1, 2]
    ms, checksum = db.execute("SELECT execution_ms, checksum FROM public.schema_migrations "
                              "WHERE version = 2").fetchone()
    assert ms is not None and ms >= 0 and len(checksum) == 64


def test_failure_says_which_statements_ran_and_records_nothing(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")
    bad = migrations.add("002_idx.sql", HEADER
                         + "CREATE INDEX CONCURRENTLY IF NOT EXISTS kgt_t_x ON kgt_t (x);\n"
                           "CREATE TABLE IF NOT EXISTS kgt_side (y INTEGER);\n"
                           "CREATE INDEX CONCURRENTLY kgt_bad ON kgt_missing (x);\n"
                           "CREATE TABLE kgt_never (z INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    out = result.output
    assert f"{bad}:6: ERROR: relation \"kgt_missing\" does not exist" in out
    assert "statements 1-2 of 4 already ran and stay applied" in out
    assert "it is not recorded" in out
    # What ran stays (no transaction to roll back); nothing after it ran; no tracking row.
    assert table_exists(db, "kgt_t_x") and table_exists(db, "kgt_side")
    assert not table_exists(db, "kgt_never")
    assert tracked(db) == [1]

    # Fixed and idempotent, the next run finishes the file and records it.
    bad.write_text(bad.read_text().replace("kgt_missing", "kgt_t"))
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert table_exists(db, "kgt_never") and table_exists(db, "kgt_bad")
    assert tracked(db) == [1, 2]


def test_failure_in_first_statement_says_none_ran(kgmigrate, migrations, db):
    migrations.add("001_idx.sql", HEADER + "CREATE INDEX CONCURRENTLY kgt_i ON kgt_nowhere (x);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "no statement of 1 ran" in result.output
    assert tracked(db) == []


def test_directive_only_counts_in_leading_comments(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n"
                                "-- kgmigrate: no-transaction\n"
                                "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "cannot run inside a transaction block" in result.output
    assert not table_exists(db, "kgt_t")  # ran in a transaction, so rolled back whole


def test_directive_after_a_leading_block_comment(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")
    migrations.add("002_idx.sql", "/*\n"
                                  " * Migration 002: index without blocking writes.\n"
                                  " */\n"
                                  "/* a second header */ -- kgmigrate: no-transaction\n"
                                  "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "[no-transaction]" in result.output
    assert db.execute("SELECT to_regclass('kgt_t_x') IS NOT NULL").fetchone()[0]


def test_hint_names_a_directive_that_comes_too_late(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "/* header */\n"
                                "CREATE TABLE kgt_t (x INTEGER);\n"
                                "-- kgmigrate: no-transaction\n"
                                "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert ("HINT: the `-- kgmigrate: no-transaction` on line 3 comes after the first statement "
            "(line 2); move it above every statement") in result.output


def test_directive_inside_a_string_does_not_count(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "/* x */ SELECT '\n-- kgmigrate: no-transaction\n';\n"
                                "CREATE TABLE kgt_t (x INTEGER);\n"
                                "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n")
    result = kgmigrate("up", "-y")
    assert "cannot run inside a transaction block" in result.output
    assert not table_exists(db, "kgt_t")
