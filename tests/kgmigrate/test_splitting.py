"""Statement splitting with PostgreSQL's grammar, checked by what lands in a real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgmigrate.files.sqltext import split_statements
from tests.support.kgm import table_exists, tracked

TRICKY = r"""-- Migration 004: tricky
/* a block comment /* nested; with a semicolon */ still inside; */
CREATE TABLE "semi;colon" ("da;ta" TEXT);

INSERT INTO "semi;colon" VALUES (E'it\'s; escaped'), ('plain; quoted'), ($tag$dollar; $$ body$tag$);

CREATE FUNCTION kgt_add(a INTEGER, b INTEGER) RETURNS INTEGER AS $$
BEGIN
    -- BEGIN/END of plpgsql are no transaction control
    RETURN a + b;
END;
$$ LANGUAGE plpgsql;

DO $do$
BEGIN
    IF kgt_add(1, 2) = 3 THEN
        INSERT INTO "semi;colon" VALUES ('from DO; block');
    END IF;
END
$do$;
"""


def test_statement_boundaries_and_start_lines():
    stmts = split_statements(TRICKY, Path("004_tricky.sql"))
    assert [(s.kind, s.line) for s in stmts] == [
        ("CreateStmt", 3), ("InsertStmt", 5), ("CreateFunctionStmt", 7), ("DoStmt", 14)]
    assert stmts[2].sql.endswith("$$ LANGUAGE plpgsql")
    assert "RETURN a + b;" in stmts[2].sql


def test_absorbed_transaction_control_leaves_only_the_work():
    text = "BEGIN;\nCREATE TABLE a (x INT);\nCOMMIT;\nSTART TRANSACTION;\nDROP TABLE a;\nEND;\n"
    assert [s.sql for s in split_statements(text, Path("f.sql"))] == [
        "CREATE TABLE a (x INT)", "DROP TABLE a"]


def _rows(db) -> list[str]:
    return [r[0] for r in db.execute('SELECT "da;ta" FROM "semi;colon" ORDER BY 1')]


def test_dollar_quotes_escapes_identifiers_comments_and_do_blocks(kgmigrate, migrations, db):
    migrations.add("004_tricky.sql", TRICKY)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert _rows(db) == ["dollar; $$ body", "from DO; block", "it's; escaped", "plain; quoted"]
    assert db.execute("SELECT kgt_add(20, 22)").fetchone()[0] == 42
    assert tracked(db) == [4]


@pytest.mark.parametrize("opening, closing", [
    ("BEGIN;", "COMMIT;"),
    ("BEGIN TRANSACTION;", "END;"),
    ("START TRANSACTION;", "COMMIT WORK;"),
])
def test_own_begin_commit_is_absorbed_into_the_files_transaction(opening, closing, kgmigrate,
                                                                  migrations, db):
    # Were COMMIT honoured, the first table would survive the failure further down.
    migrations.add("001_own_tx.sql", f"{opening}\nCREATE TABLE kgt_first (x INTEGER);\n{closing}\n"
                                     f"SELECT 1 / 0;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert not table_exists(db, "kgt_first")
    assert tracked(db) == []


def test_seed_format_file_records_itself_once(kgmigrate, migrations, db):
    migrations.add("001_seed.sql", "BEGIN;\nCREATE TABLE kgt_seed (x INTEGER);\n"
                                   "INSERT INTO public.schema_migrations (version, name)\n"
                                   "VALUES (1, 'seed') ON CONFLICT (version) DO NOTHING;\nCOMMIT;\n")
    assert kgmigrate("up", "-y").exit_code == 0
    row = db.execute("SELECT version, name, checksum IS NOT NULL, execution_ms IS NOT NULL "
                     "FROM public.schema_migrations").fetchall()
    assert row == [(1, "seed", True, True)]


def test_last_statement_with_a_trailing_comment_and_no_semicolon(kgmigrate, migrations, db):
    path = migrations.path / "001_tail.sql"
    path.write_text("CREATE TABLE kgt_tail (x INTEGER);\nINSERT INTO kgt_tail VALUES (1) -- done")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert db.execute("SELECT x FROM kgt_tail").fetchall() == [(1,)]
    assert tracked(db) == [1]


def test_savepoints_pass_through(kgmigrate, migrations, db):
    migrations.add("001_sp.sql", "CREATE TABLE kgt_sp (x INTEGER);\nSAVEPOINT a;\n"
                                 "INSERT INTO kgt_sp VALUES (1);\nROLLBACK TO SAVEPOINT a;\n"
                                 "INSERT INTO kgt_sp VALUES (2);\nRELEASE a;\n")
    assert kgmigrate("up", "-y").exit_code == 0
    assert [r[0] for r in db.execute("SELECT x FROM kgt_sp")] == [2]


@pytest.mark.parametrize("text, line, word", [
    ("CREATE TABLE kgt_a (x INTEGER);\nROLLBACK;\n", 2, "ROLLBACK"),
    ("CREATE TABLE kgt_a (x INTEGER);\n\nABORT;\n", 3, "ABORT"),
    ("CREATE TABLE kgt_a (x INTEGER);\nCOMMIT AND CHAIN;\n", 2, "COMMIT"),
    ("CREATE TABLE kgt_a (x INTEGER);\nPREPARE TRANSACTION 'x';\n", 2, "PREPARE"),
])
def test_rollback_and_other_transaction_control_refused_before_anything_runs(
        text, line, word, kgmigrate, migrations, db):
    migrations.add("001_fine.sql", "CREATE TABLE kgt_fine (x INTEGER);\n")
    bad = migrations.add("002_bad.sql", text)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:{line}: error: {word} is not allowed" in result.output
    assert "Traceback" not in result.output
    assert not table_exists(db, "kgt_fine")  # the good file before it did not run either
    assert not table_exists(db, "public.schema_migrations")


@pytest.mark.parametrize("text, line, command", [
    ("\\set ON_ERROR_STOP 1\nCREATE TABLE kgt_a (x INTEGER);\n", 1, "\\set"),
    ("CREATE TABLE kgt_a (x INTEGER);\n\\i other.sql\n", 2, "\\i"),
    ("CREATE TABLE kgt_a (x INTEGER);\n\n    \\echo hello\n", 3, "\\echo"),
])
def test_psql_meta_commands_refused_with_their_location(text, line, command, kgmigrate,
                                                        migrations, db):
    bad = migrations.add("001_meta.sql", text)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:{line}: error: psql meta-command {command} is not supported" in result.output
    assert not table_exists(db, "kgt_a")


def test_line_numbers_count_characters_not_bytes(kgmigrate, migrations, db):
    migrations.add("001_utf8.sql", "-- ünïcødé ✓ before the error shifts bytes, not lines\n"
                                   "CREATE TABLE kgt_u (x TEXT);\nINSERT INTO kgt_u VALUES ('ü');\n"
                                   "SELECT 1 FROM FROM;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "001_utf8.sql:4: syntax error" in result.output
    assert "SELECT 1 FROM FROM;" in result.output


@pytest.mark.parametrize("text, line", [
    ("CREATE TABLE kgt_c (x INTEGER);\nCOPY kgt_c FROM stdin;\n1\n2\n\\.\n", 2),
    ("CREATE TABLE kgt_c (x INTEGER);\n\nCOPY (SELECT 1) TO STDOUT;\n", 3),
])
def test_client_side_copy_refused_with_its_location(text, line, kgmigrate, migrations, db):
    bad = migrations.add("001_copy.sql", text)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:{line}: error: COPY FROM STDIN / TO STDOUT needs psql" in result.output
    assert not table_exists(db, "kgt_c")
