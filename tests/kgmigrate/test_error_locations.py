"""Errors point at the line that caused them: grammar the pre-check allowed, PL/pgSQL bodies, CJK."""

from __future__ import annotations

import unicodedata

import pytest

from tests.support.kgm import table_exists, tracked


def _caret_under(output: str, source_end: str) -> str:
    """Return the text of the source line ending in `source_end` up to the caret below it."""
    lines = output.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.endswith(source_end))
    col = lines[i + 1].index("^")
    width = 0
    for n, ch in enumerate(lines[i]):
        if width >= col:
            return lines[i][n:]
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    raise AssertionError("caret past the line")


def test_grammar_newer_than_the_server_is_blamed_on_its_line(kgmigrate, migrations, db):
    """pglast accepts `IS JSON` (PostgreSQL 16); the 15 server rejects the whole script."""
    bad = migrations.add("001_json.sql", "CREATE TABLE kgt_a (id int);\n"
                                         "CREATE TABLE kgt_b (j text CHECK (j IS JSON));\n"
                                         "CREATE TABLE kgt_c (id int);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:2: ERROR: syntax error at or near \"JSON\"" in result.output
    assert _caret_under(result.output, "(j IS JSON));").startswith("JSON")
    assert tracked(db) == [] and not table_exists(db, "kgt_a")


def test_error_in_a_do_block_points_at_its_line_with_the_query(kgmigrate, migrations, db):
    bad = migrations.add("001_do.sql", "CREATE TABLE kgt_do (x int);\n"
                                       "DO $$\n"
                                       "DECLARE n int;\n"
                                       "BEGIN\n"
                                       "  SELECT count(*) INTO n FROM kgt_do;\n"
                                       "  INSERT INTO kgt_nowhere VALUES (n);\n"
                                       "END $$;\n")
    result = kgmigrate("up", "-y")
    out = result.output
    assert f"{bad}:6: ERROR: relation \"kgt_nowhere\" does not exist" in out
    assert "  QUERY: INSERT INTO kgt_nowhere VALUES (n)" in out
    assert "CONTEXT: PL/pgSQL function inline_code_block line 5 at SQL statement" in out
    assert _caret_under(out, "INSERT INTO kgt_nowhere VALUES (n);").startswith("kgt_nowhere")
    assert not table_exists(db, "kgt_do")


def test_raise_in_a_do_block_on_the_same_line_as_do(kgmigrate, migrations, db):
    bad = migrations.add("001_raise.sql", "SELECT 1;\n"
                                          "DO LANGUAGE plpgsql $body$ BEGIN PERFORM 1;\n"
                                          "  RAISE EXCEPTION 'stop here %', 42; END $body$;\n")
    result = kgmigrate("up", "-y")
    assert f"{bad}:3: ERROR: stop here 42" in result.output
    assert "3 |   RAISE EXCEPTION 'stop here %', 42; END $body$;" in result.output


def test_error_in_a_function_this_file_creates_points_into_its_body(kgmigrate, migrations, db):
    bad = migrations.add("001_fn.sql", "CREATE FUNCTION kgt_div(x int) RETURNS int\n"
                                       "LANGUAGE plpgsql AS $$\n"
                                       "BEGIN\n"
                                       "  RETURN 10 / x;\n"
                                       "END $$;\n"
                                       "SELECT kgt_div(0);\n")
    result = kgmigrate("up", "-y")
    assert f"{bad}:4: ERROR: division by zero" in result.output
    assert "PL/pgSQL function kgt_div(integer) line 3 at RETURN" in result.output
    assert "CALLED FROM: line 6: SELECT kgt_div(0)\n" in result.output


def test_syntax_error_inside_a_function_body_at_creation(kgmigrate, migrations, db):
    bad = migrations.add("001_fn.sql", "SELECT 1;\n"
                                       "CREATE FUNCTION kgt_f() RETURNS int LANGUAGE plpgsql AS $$\n"
                                       "BEGIN\n"
                                       "  RETURN 1\n"
                                       "  SELEC 2;\n"
                                       "END $$;\n")
    result = kgmigrate("up", "-y")
    assert f"{bad}:5: ERROR: syntax error at or near \"2\"" in result.output


def test_caret_under_a_line_with_wide_characters(kgmigrate, migrations, db):
    migrations.add("001_cjk.sql", "CREATE TABLE kgt_u (x text);\n"
                                  "SELECT '日本語のテキスト', x, nope FROM kgt_u;\n")
    result = kgmigrate("up", "-y")
    assert "ERROR: column \"nope\" does not exist" in result.output
    assert _caret_under(result.output, "x, nope FROM kgt_u;").startswith("nope")


@pytest.mark.parametrize(("name", "text", "line", "context"), [
    ("004_notice.sql", "CREATE TABLE kgt_c (x int);\nDO $$\nBEGIN\n  RAISE NOTICE 'at 50%';\n"
                       "END $$;\n", 4, '"inline_code_block" near line 3'),
    ("001_fn.sql", "CREATE FUNCTION kgt_f() RETURNS void\nLANGUAGE plpgsql AS $$\nBEGIN\n"
                   "  PERFORM 1;\n  RAISE NOTICE '% and %', 1;\nEND $$;\n", 5,
     '"kgt_f" near line 4'),
], ids=["do-block", "function"])
def test_compile_error_in_a_body_points_at_its_line(name, text, line, context, kgmigrate,
                                                    migrations, db):
    """`near line N` of a body's compilation (a RAISE missing an argument) maps into the file."""
    bad = migrations.add(name, text)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:{line}: ERROR: too few parameters specified for RAISE" in result.output
    assert f"compilation of PL/pgSQL function {context}" in result.output
    assert f"{line:>5} |   RAISE NOTICE" in result.output
    assert tracked(db) == []
