"""Unverified plain dumps (real pg_dump output) are judged as psql reads them before a restore."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from kgmigrate.postgres.programs import find_binary
from kgmigrate.snapshot.dumpscan import find_hazard
from tests.support.kgm import latest_version

TRICKY_ROWS = r"""
CREATE TABLE kg_api.notes (id int PRIMARY KEY, t text, tag text);
INSERT INTO kg_api.notes VALUES
  (1, E'first line\nCOMMIT;\nEND;\n\\connect postgres\n\\.\nlast', 'newlines'),
  (2, 'COMMIT;', 'a whole COPY line'),
  (3, E'$$ END; $$ \\ backslash '' quote " dquote', 'quotes'),
  (4, 'ROLLBACK;', E'\\! echo hi'),
  (5, '日本語; COMMIT;', '/* not a comment */ -- nor this');
"""


def _dump(url: str, path: Path, *args: str) -> Path:
    subprocess.run([str(find_binary("pg_dump")), *args, "-d", url, "-f", str(path)], check=True,
                   capture_output=True)
    return path


@pytest.fixture
def project_db(kgmigrate, repo_schema, db):
    """The test database built by the project's own baseline and migrations, plus tricky rows."""
    result = kgmigrate("up", "-y", "--no-snapshot", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    db.execute(TRICKY_ROWS)
    return db


def _rows(db) -> list[tuple]:
    return db.execute("SELECT id, t, tag FROM kg_api.notes ORDER BY id").fetchall()


@pytest.mark.parametrize("style", [[], ["--inserts"]], ids=["copy", "inserts"])
def test_plain_dump_of_a_project_database_restores(style, project_db, db_url, kgmigrate,
                                                   repo_schema, tmp_path):
    """PL/pgSQL bodies end in `END;`; COPY and INSERT data hold lines that look like SQL."""
    db = project_db
    before = _rows(db)
    dump = _dump(db_url, tmp_path / "old.sql", *style)  # no manifest: the check applies
    assert "\nEND;\n" in dump.read_text(encoding="utf-8")  # update_embedding_config_timestamp
    db.execute("DELETE FROM kg_api.notes")
    db.execute("DROP FUNCTION kg_api.update_embedding_config_timestamp() CASCADE")

    result = kgmigrate("restore", "-y", "--unverified", str(dump), migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    assert f"Restored old.sql. Schema version: {latest_version(repo_schema):03d}" in result.output
    assert _rows(db) == before
    # The trigger function came back and works.
    db.execute("UPDATE kg_api.embedding_config SET updated_at = 'epoch' WHERE active")
    assert db.execute("SELECT updated_at > 'epoch' FROM kg_api.embedding_config WHERE active"
                      ).fetchone()[0]


def test_dump_with_a_real_top_level_commit_is_refused_untouched(db, db_url, kgmigrate,
                                                                migrations, tmp_path):
    """pg_dump writes BEGIN; ... COMMIT; around large objects in a plain dump."""
    db.execute("CREATE TABLE kept (x int)")
    db.execute("SELECT lo_from_bytea(0, 'blob')")
    dump = _dump(db_url, tmp_path / "lo.sql")
    assert "\nCOMMIT;\n" in dump.read_text(encoding="utf-8")
    db.execute("INSERT INTO kept VALUES (1)")
    result = kgmigrate("restore", "-y", "--unverified", str(dump))
    assert result.exit_code == 1
    assert "cannot be restored in one transaction" in result.output
    assert "it ends a transaction itself (COMMIT;)" in result.output
    line = dump.read_text(encoding="utf-8").splitlines().index("COMMIT;") + 1
    assert f"line {line}:" in result.output
    assert db.execute("SELECT count(*) FROM kept").fetchone()[0] == 1  # nothing was touched


def test_dump_that_connects_elsewhere_is_refused(db, db_url, kgmigrate, tmp_path):
    db.execute("CREATE TABLE kept (x int)")
    dump = _dump(db_url, tmp_path / "create.sql", "--create")  # writes \connect <database>
    result = kgmigrate("restore", "-y", "--unverified", str(dump))
    assert result.exit_code == 1
    assert "it contains the psql command '\\\\connect" in result.output
    assert db.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone()[0]


def test_reading_in_small_pieces_finds_the_same(project_db, db_url, tmp_path):
    """The dump is streamed: statements, COPY blocks and meta-commands straddle the reads."""
    text = _dump(db_url, tmp_path / "d.sql").read_bytes()
    assert b"\n\\restrict " in text and b"\n\\unrestrict " in text
    assert find_hazard(io.BytesIO(text), chunk=97) is None
    copy_end = text.index(b"\n\\.\n", text.index(b"COPY kg_api.notes")) + 4
    bad = text[:copy_end] + b"\nCOMMIT;\n" + text[copy_end:]
    line = bad[:copy_end].count(b"\n") + 2
    for chunk in (97, 4096, 1 << 22):
        assert find_hazard(io.BytesIO(bad), chunk=chunk) == \
            f"line {line}: it ends a transaction itself (COMMIT;)"


@pytest.mark.parametrize("text, found", [
    (("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE "
      "WHEN true THEN 2 END;\nEND;\n"), None),
    ("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nCOMMIT;\n",
     "line 2: it ends a transaction itself (COMMIT;)"),
    ("SELECT 1;\nEND\n", "line 2: it ends a transaction itself (END;)"),  # psql sends it at EOF
    ("SAVEPOINT a;\nROLLBACK TO SAVEPOINT a;\nBEGIN;\n", None),
    ("SELECT E'it\\'s\nCOMMIT;\n', \"x;\nROLLBACK;\", /* /* nested */ COMMIT; */ 1;\n", None),
    ("SELECT $tag$ $$\nCOMMIT;\n$$ $tag$;\n", None),
    ("\\restrict 9AbC\nSELECT 1;\n\\unrestrict 9AbC\n", None),
    ("SELECT 1;\n\\echo 'unclosed\n", "line 2: it contains the psql command \"\\\\echo 'unclosed\""),
    ("COPY t (a) FROM stdin;\n\\.\nPREPARE TRANSACTION 'x';\n",
     "line 3: it ends a transaction itself (PREPARE TRANSACTION 'x';)"),
])
def test_psql_statement_rules(text, found):
    for chunk in (5, 1 << 20):
        assert find_hazard(io.BytesIO(text.encode()), chunk=chunk) == found
