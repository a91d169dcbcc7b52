"""Migration files: naming, duplicates, line endings, checksums, comment-only and late files."""

from __future__ import annotations

import hashlib
import json

import pytest

from kgmigrate.files.migrations import checksum
from kgmigrate.files.versions import versions_text
from tests.support.kgm import table_exists, tracked, user_relations

BODY = "-- Migration 001\nCREATE TABLE kgt_crlf (x INTEGER);\n\nINSERT INTO kgt_crlf VALUES (1);\n"


def _status(kgmigrate) -> dict:
    result = kgmigrate("status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_crlf_file_applies_and_is_not_drift_when_resaved_with_lf(kgmigrate, migrations, db):
    path = migrations.add("001_crlf.sql", BODY, newline="\r\n")
    assert b"\r\n" in path.read_bytes()
    assert kgmigrate("up", "-y").exit_code == 0
    assert db.execute("SELECT x FROM kgt_crlf").fetchall() == [(1,)]
    # Re-saved on another platform: LF endings, trailing spaces, extra blank lines at the end.
    path.write_text(BODY.replace("INTEGER);", "INTEGER);   ") + "\n\n\n", encoding="utf-8")
    status = _status(kgmigrate)
    assert status["drifted"] == []
    assert kgmigrate("up", "-y").exit_code == 0


def test_crlf_error_lines_are_right(kgmigrate, migrations, db):
    bad = migrations.add("001_crlf.sql", "CREATE TABLE kgt_c (x INTEGER);\nSELECT 1 / 0;\n",
                         newline="\r\n")
    result = kgmigrate("up", "-y")
    assert f"{bad}:2: ERROR: division by zero" in result.output
    assert "\r" not in result.output


def test_checksum_is_sha256_of_normalised_text(kgmigrate, migrations, db):
    migrations.add("001_crlf.sql", BODY + "  \n\n", newline="\r\n")
    assert kgmigrate("up", "-y").exit_code == 0
    expected = hashlib.sha256(BODY.rstrip("\n").encode()).hexdigest()
    assert checksum(BODY) == expected
    assert _status(kgmigrate)["applied"][0]["checksum"] == expected


def test_real_edit_changes_the_checksum():
    assert checksum(BODY) != checksum(BODY.replace("INTEGER", "BIGINT"))
    assert checksum(BODY) != checksum("  " + BODY)  # leading whitespace is content


@pytest.mark.parametrize("text", ["", "-- only a comment\n", "/* block */\n-- and a line\n\n"])
def test_comment_only_file_is_recorded(text, kgmigrate, migrations, db):
    migrations.add("001_reference.sql", text)
    migrations.add("002_real.sql", "CREATE TABLE kgt_real (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Migration 001 - reference" in result.output
    assert tracked(db) == [1, 2]


def test_duplicate_versions_are_an_error_before_anything_runs(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    migrations.add("0002_c.sql", "CREATE TABLE kgt_c (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "duplicate migration version(s): 0002_c.sql and 002_b.sql" in result.output
    assert user_relations(db) == []


@pytest.mark.parametrize("name", ["add_users.sql", "v3_users.sql", "004-users.sql", "005_.sql",
                                  "006.sql"])
def test_badly_named_sql_file_is_an_error_before_anything_runs(name, kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add(name, "CREATE TABLE kgt_b (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"badly named migration file(s) (expected NNN_name.sql): {name}" in result.output
    assert user_relations(db) == []


def test_other_files_in_the_directory_are_ignored(kgmigrate, migrations, db):
    migrations.add("README.md", "# how to write a migration\n")
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("001_a.sql.orig", "garbage\n")
    assert kgmigrate("up", "-y").exit_code == 0
    assert tracked(db) == [1]


def test_pending_file_below_current_version_is_refused_unless_allowed(
        kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("003_c.sql", "CREATE TABLE kgt_c (x INTEGER);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")  # merged from a branch
    migrations.add("004_d.sql", "CREATE TABLE kgt_d (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1, result.output
    assert "002_b.sql is numbered below applied version(s) 003" in result.output
    assert tracked(db) == [1, 3]
    result = kgmigrate("up", "-y", "--allow-out-of-order")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("Migration 002 - b (") < out.index("Migration 004 - d (")
    assert tracked(db) == [1, 2, 3, 4]
    assert table_exists(db, "kgt_b")


def test_non_utf8_file_is_one_clear_error(kgmigrate, migrations, db):
    path = migrations.path / "001_latin1.sql"
    path.write_bytes("INSERT INTO t VALUES ('caf\u00e9');\n".encode("latin-1"))
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{path}: not valid UTF-8" in result.output


@pytest.mark.parametrize(("versions", "text"), [
    ([], ""),
    ([4, 1], "001, 004"),
    ([1, 2], "001, 002"),
    (range(1, 245), "001–244 (244 versions)"),
    ([*range(1, 245), 250, *range(260, 286)], "001–244, 250, 260–285 (271 versions)"),
    ([1000, 999, 998, 3], "003, 998–1000 (4 versions)"),
])
def test_version_lists_read_as_ranges_with_a_count(versions, text):
    assert versions_text(versions) == text
