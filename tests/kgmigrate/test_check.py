"""`kgmigrate check`: the folder alone, and two branches in a real git history (no database)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgmigrate.cli import cli

SCHEMA = "schema/migrations"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


def _write(repo: Path, name: str, text: str) -> Path:
    p = repo / SCHEMA / name
    p.write_text(text)
    return p


def _check(*args: str):
    return CliRunner().invoke(cli, ["--migrations-dir", SCHEMA, "check", *args],
                              catch_exceptions=False)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """main has 001, 002; `feature` branches off, then main gets 003_orders (merged first)."""
    repo = tmp_path / "repo"
    (repo / SCHEMA).mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, "001_users.sql", "CREATE TABLE users (id INTEGER);\n")
    _write(repo, "002_items.sql", "CREATE TABLE items (id INTEGER);\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "checkout", "-qb", "feature")
    _write(repo, "003_emails.sql", "ALTER TABLE users ADD COLUMN email TEXT;\n")
    _write(repo, "004_phones.sql", "-- kgmigrate:requires 003\n"
                                   "ALTER TABLE users ADD COLUMN phone TEXT;\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "feature")
    _git(repo, "checkout", "-q", "main")
    _write(repo, "003_orders.sql", "CREATE TABLE orders (id INTEGER);\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "orders")
    _git(repo, "checkout", "-q", "feature")
    monkeypatch.chdir(repo)
    return repo


def test_a_clean_branch_passes(repo):
    _git(repo, "checkout", "-q", "main")
    result = _check("--base", "main~1")
    assert result.exit_code == 0, result.output
    assert result.output == "check: no findings in 3 file(s) against main~1.\n"


def test_files_added_at_or_below_the_bases_highest_are_out_of_order(repo):
    result = _check("--base", "main")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"{SCHEMA}/003_emails.sql:1: out-of-order: 003_emails.sql is new on this branch but "
        f"numbered at or below 003_orders.sql, the highest in main: it will run out of order on "
        f"every database that has main's files; renumber it (`kgmigrate renumber "
        f"003_emails.sql`)",
        "check: 1 finding(s) in 4 file(s) against main."]
    assert _check().exit_code == 0  # without a base the branch alone is consistent


def test_edited_and_deleted_files_of_the_base_and_github_annotations(repo):
    _write(repo, "001_users.sql", "CREATE TABLE users (id BIGINT);\n")
    # what the recorded checksum ignores is no drift: line ends, trailing blanks, squawk hints
    (repo / SCHEMA / "002_items.sql").write_bytes(
        b"-- squawk-ignore prefer-bigint-over-int\r\nCREATE TABLE items (id INTEGER);  \r\n\r\n")
    result = _check("--base", "main~1", "--format", "github")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"::error file={SCHEMA}/001_users.sql,line=1,title=kgmigrate drift::001_users.sql was "
        f"edited relative to main~1, where it may be applied already: databases that ran it "
        f"will refuse the edit as drift; restore it and put the change in a new migration"]
    (repo / SCHEMA / "002_items.sql").unlink()
    found = json.loads(_check("--base", "main~1", "--format", "json").output)
    assert [(f["path"], f["kind"]) for f in found["findings"]] == [
        (f"{SCHEMA}/001_users.sql", "drift"), (f"{SCHEMA}/002_items.sql", "deleted")]
    assert found["errors"] == 2 and found["base"] == "main~1"


def test_folder_problems_directives_and_requires_without_a_base(repo):
    _write(repo, "004_dupe.sql", "SELECT 1;\n")
    _write(repo, "007_x.down.sql", "SELECT 1;\n")
    _write(repo, "003_emails.sql", "-- kgmigrate:requires 009\n-- kgmigrate:no-transactions\n"
                                   "SELECT 1;\n-- kgmigrate:no-transaction\n")
    found = json.loads(_check("--format", "json").output)
    got = [(Path(f["path"]).name, f["line"], f["kind"]) for f in found["findings"]]
    assert got == [("003_emails.sql", 1, "requires"), ("003_emails.sql", 2, "directive"),
                   ("003_emails.sql", 4, "directive"), ("004_phones.sql", 1, "files"),
                   ("007_x.down.sql", 1, "files")]
    assert "duplicate migration version(s): 004_dupe.sql and 004_phones.sql" in \
        found["findings"][3]["message"]
    assert "down file without its migration: 007_x.down.sql" in found["findings"][4]["message"]


def test_usage_errors_exit_2(repo, tmp_path):
    result = _check("--base", "no-such-branch")
    assert result.exit_code == 2
    assert "--base no-such-branch: no such git commit, branch or tag" in result.output
    result = _check("--format", "xml")
    assert result.exit_code == 2


def test_lint_covers_only_the_files_new_relative_to_the_base(repo):
    _git(repo, "checkout", "-q", "main")
    _write(repo, "002_items.sql", "DROP TABLE users;\nCREATE TABLE items (id INTEGER);\n")
    _git(repo, "commit", "-qam", "an old destructive file")
    _git(repo, "checkout", "-qb", "dropper")
    _write(repo, "004_drop.sql", "ALTER TABLE items DROP COLUMN id;\n")
    result = _check("--base", "main", "--lint")
    assert result.exit_code == 1, result.output
    lint = [line for line in result.output.splitlines() if ": lint: " in line]
    assert lint and all(line.startswith(f"{SCHEMA}/004_drop.sql:1: lint: ") for line in lint)
    assert any(": lint: ban-drop-column:" in line for line in lint)  # an error, as in `lint`
    assert _check("--base", "main").exit_code == 0
