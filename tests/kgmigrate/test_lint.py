"""`kgmigrate lint`: squawk as the rule engine, kgmigrate's severities, what it hides, its failures."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgmigrate.cli import cli
from kgmigrate.errors import LintUnavailable
from kgmigrate.files.squawk import find_squawk
from tests.support.kgm import NO_TX, env, run_kgmigrate


@pytest.fixture
def lint(migrations, tmp_path, monkeypatch):
    """Run `kgmigrate lint ARGS` in-process from tmp_path (so no stray .squawk.toml applies)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        return CliRunner().invoke(cli, ["--migrations-dir", str(migrations.path), "lint", *args],
                                  catch_exceptions=False)

    return run


@pytest.mark.parametrize("sql, rule", [
    ("DROP TABLE kg_api.sessions;\n", "ban-drop-table"),
    ("ALTER TABLE kg_api.sessions DROP COLUMN data;\n", "ban-drop-column"),
    ("DROP SCHEMA kg_logs CASCADE;\n", "ban-drop-schema"),
    ("DROP DATABASE kg;\n", "ban-drop-database"),
])
def test_destructive_changes_are_errors_and_exit_1(lint, migrations, sql, rule):
    path = migrations.add("004_destroy.sql", sql)
    result = lint()
    assert result.exit_code == 1, result.output
    line = next(ln for ln in result.stdout.splitlines() if f": {rule}: " in ln)
    assert line.startswith(f"{path}:1:")
    assert f"1 error ({rule})" in result.stdout.splitlines()[-1]


def test_other_findings_are_warnings_exit_0_unless_strict(lint, migrations):
    path = migrations.add("004_index.sql", "CREATE INDEX IF NOT EXISTS idx_sessions_user "
                                           "ON kg_api.sessions (user_id);\n")
    result = lint()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    i = lines.index(f"{path}:1:1: require-concurrent-index-creation: During normal index "
                    f"creation, table updates are blocked, but reads are still allowed.")
    assert lines[i + 1].startswith("  help: ")  # squawk's help line follows its finding
    assert lines[-1].startswith("Lint: 0 errors, ") and " warning" in lines[-1]
    assert lint("--strict").exit_code == 1


def test_clean_file_exits_0_even_when_strict(lint, migrations):
    migrations.add("004_ok.sql", "SELECT 1;\n")
    result = lint("--strict")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Lint: no findings in 1 file."


def test_json_shape(lint, migrations):
    # A non-ASCII character before the finding: columns count characters, not bytes.
    path = migrations.add("004_drop.sql", "-- drop it\nSELECT 'é'; DROP TABLE kgt_old;\n")
    result = lint("--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert list(report) == ["files", "errors", "warnings", "hidden", "findings"]
    assert report["files"] == 1 and report["errors"] == 1
    assert report["warnings"] == len(report["findings"]) - 1
    drop = next(f for f in report["findings"] if f["rule"] == "ban-drop-table")
    assert drop == {"path": str(path), "line": 2, "column": 13, "end_line": 2,
                    "end_column": drop["end_column"], "rule": "ban-drop-table",
                    "severity": "error", "message": "Dropping a table may break existing clients.",
                    "help": drop["help"]}
    assert drop["end_column"] > drop["column"]
    assert all(f["severity"] == "warning" for f in report["findings"] if f is not drop)


def test_ignore_comment_silences_one_statement(lint, migrations):
    migrations.add("004_drop.sql", "-- squawk-ignore ban-drop-table -- replaced by kgt_new in 003\n"
                                   "DROP TABLE IF EXISTS kgt_old;\n"
                                   "DROP TABLE IF EXISTS kgt_older;\n")
    result = lint("--json")
    findings = json.loads(result.stdout)["findings"]
    assert [(f["rule"], f["line"]) for f in findings if f["severity"] == "error"] == \
        [("ban-drop-table", 3)]


def test_squawk_toml_in_the_current_directory_applies(lint, migrations, tmp_path):
    migrations.add("004_drop.sql", "ALTER TABLE kgt_a ADD COLUMN b BIGINT DEFAULT 1;\n"
                                   "DROP TABLE IF EXISTS kgt_old;\n")
    before = json.loads(lint("--json").stdout)["findings"]
    assert "ban-drop-table" in {f["rule"] for f in before}
    assert "adding-field-with-default" not in {f["rule"] for f in before}  # fine since PG 11
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["ban-drop-table"]\n'
                                           'pg_version = "10.0"\n')
    result = lint("--json")
    assert result.exit_code == 0
    rules = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert "ban-drop-table" not in rules and "adding-field-with-default" in rules


def test_no_transaction_files_are_linted_as_running_outside_a_transaction(lint, migrations):
    body = ("CREATE TABLE IF NOT EXISTS kgt_a (x BIGINT);\n"
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS kgt_a_x ON kgt_a (x);\n")
    wrapped = migrations.add("004_in_tx.sql", body)
    outside = migrations.add("005_no_tx.sql", NO_TX + body)
    findings = json.loads(lint("--json").stdout)["findings"]
    flagged = {f["path"] for f in findings
               if f["rule"] == "ban-concurrent-index-creation-in-transaction"}
    assert flagged == {str(wrapped)}
    assert str(outside) not in flagged


def test_absorbed_begin_commit_are_hidden_but_rollback_is_not(lint, migrations):
    migrations.add("004_old.sql", "-- Old runner format\nBEGIN;\n"
                                  "CREATE TABLE IF NOT EXISTS kgt_a (x BIGINT);\nCOMMIT;\n")
    report = json.loads(lint("--json").stdout)
    assert report["findings"] == [] and report["hidden"] >= 2  # BEGIN and COMMIT
    migrations.add("005_rollback.sql", "SELECT 1;\nROLLBACK;\n")
    findings = json.loads(lint("--json").stdout)["findings"]
    assert [(f["rule"], f["path"].rsplit("/", 1)[-1], f["line"]) for f in findings] == \
        [("transaction-nesting", "005_rollback.sql", 2)]


def test_require_lock_timeout_is_hidden_only_while_kgmigrate_bounds_lock_waits(lint, migrations):
    migrations.add("004_alter.sql", "ALTER TABLE kgt_a ADD COLUMN IF NOT EXISTS b BIGINT;\n")
    rules_on = {f["rule"] for f in json.loads(lint("--json").stdout)["findings"]}
    assert "require-lock-timeout" not in rules_on
    rules_off = {f["rule"] for f in json.loads(
        lint("--json", "--ddl-lock-timeout", "0").stdout)["findings"]}
    assert "require-lock-timeout" in rules_off


def test_paths_folders_and_odd_names(lint, migrations, tmp_path):
    migrations.add("004_a.sql", "DROP TABLE kgt_a;\n")
    odd = tmp_path / "more" / "we[ir]d*.sql"
    odd.parent.mkdir()
    odd.write_text("SELECT 1;\n")
    result = lint(str(odd))
    assert result.exit_code == 0, result.output
    assert "no findings in 1 file" in result.stdout
    result = lint(str(tmp_path / "more"), str(migrations.path / "004_a.sql"))
    assert result.exit_code == 1 and "in 1 of 2 files" in result.stdout


def test_squawk_missing_is_one_line_error(lint, migrations, monkeypatch, tmp_path):
    migrations.add("004_a.sql", "SELECT 1;\n")
    monkeypatch.setenv("KG_SQUAWK", str(tmp_path / "no-squawk-here"))
    result = lint()
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        (f"Error: squawk not found: KG_SQUAWK={tmp_path / 'no-squawk-here'} is not an "
         f"executable file")]


def test_squawk_failing_is_one_line_error_naming_the_cause(lint, migrations, tmp_path):
    migrations.add("004_a.sql", "SELECT 1;\n")
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["no-such-rule"]\n')
    result = lint()
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: squawk failed (exit 1): "
                                                   "Configuration error:"), result.stderr
    assert "no-such-rule" in lines[0]


def test_find_squawk_prefers_the_venv_then_path(monkeypatch, tmp_path):
    real = find_squawk()
    assert Path(real) == Path(sys.executable).with_name("squawk")  # what make install put there
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "python"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(LintUnavailable, match="pip install squawk-cli"):
        find_squawk()
    os.symlink(real, bindir / "squawk")
    assert find_squawk() == str(bindir / "squawk")


def test_shipped_migrations_and_baseline_lint_clean():
    for args in (["lint", "--strict"], ["lint", "--strict", "schema/00_baseline.sql"]):
        proc = run_kgmigrate(None, None, *args, environ=env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Lint: no findings in" in proc.stdout


def test_pending_lints_only_what_the_database_lacks(kgmigrate, migrations):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x BIGINT);\nDROP TABLE kgt_a;\n")
    assert kgmigrate("up", "-y", "--lint", "off").exit_code == 0
    new = migrations.add("002_b.sql", "CREATE TABLE IF NOT EXISTS kgt_b (x BIGINT);\n")
    result = kgmigrate("lint", "--pending", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 1 and report["errors"] == 0
    assert {f["path"] for f in report["findings"]} <= {str(new)}
    assert kgmigrate("lint", "--pending", str(new)).exit_code == 2  # one or the other


def test_annotating_an_applied_file_in_its_header_is_not_drift(kgmigrate, migrations, db):
    path = migrations.add("001_a.sql", "-- Migration 001\nCREATE TABLE kgt_a (id SERIAL);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    path.write_text("-- Migration 001\n-- squawk-ignore-file prefer-identity, prefer-bigint-over-int"
                    " -- applied long ago\nCREATE TABLE kgt_a (id SERIAL);\n")
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert status["drifted"] == []
    # Anything else in the file still counts.
    path.write_text(path.read_text() + "-- an afterthought\n")
    assert json.loads(kgmigrate("status", "--json").stdout)["drifted"] == [1]


# Checksums that databases migrated before the files were annotated have recorded.
SHIPPED = {"002_example_add_query_cache.sql":
           "f45938bc6e8a2d2fd59aac0e5eb6fb46f3f62a05db75fdf22f2aea5f61c2db51",
           "003_add_embedding_config.sql":
           "036427e8359a7343a2cd255c848d10aba9a883c776edd71993abf558eb2417ed"}


def test_shipped_migrations_keep_the_checksums_databases_recorded(repo_schema):
    from kgmigrate.files.migrations import file_checksum

    for name, recorded in SHIPPED.items():
        assert "squawk-ignore-file" in (repo_schema / name).read_text()
        assert file_checksum(repo_schema / name) == recorded, name


def test_kg_squawk_names_the_binary_to_use(migrations, tmp_path):
    migrations.add("004_drop.sql", "DROP TABLE kgt_a;\n")
    mine = tmp_path / "tools" / "squawk"
    mine.parent.mkdir()
    shutil.copy(find_squawk(), mine)
    proc = run_kgmigrate(None, migrations.path, "lint", environ=env(KG_SQUAWK=str(mine)))
    assert proc.returncode == 1 and ": ban-drop-table: " in proc.stdout, proc.stderr
