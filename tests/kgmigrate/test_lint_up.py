"""`up` lints the pending files first: --lint=warn|error|off (KG_LINT), squawk missing or failing."""

from __future__ import annotations

import pytest

from tests.support.kgm import env, run_kgmigrate, table_exists, tracked

DROP = "DROP TABLE IF EXISTS kgt_old;\n"


@pytest.fixture(autouse=True)
def _no_stray_config(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # squawk looks for .squawk.toml from the current directory


def test_findings_are_printed_before_the_apply_question(kgmigrate, migrations, db):
    path = migrations.add("001_drop.sql", DROP)
    result = kgmigrate("up", input="n\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    finding = out.index(f"{path}:1:1: ban-drop-table: Dropping a table may break existing clients.")
    summary = out.index("Lint: 1 error (ban-drop-table)")
    assert out.index("Pending: 1 migration(s)") < finding < summary < out.index("Apply 1 migration")
    assert tracked(db) == []


def test_warn_mode_applies_despite_errors(kgmigrate, migrations, db):
    db.execute("CREATE TABLE kgt_old (x BIGINT)")
    migrations.add("001_drop.sql", DROP)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert ": ban-drop-table: " in result.stdout
    assert not table_exists(db, "kgt_old") and tracked(db) == [1]


@pytest.mark.parametrize("how", [("--lint", "error"), ("--lint=error",), "KG_LINT"])
def test_error_mode_refuses_before_anything_runs(migrations, db_url, db, how):
    db.execute("CREATE TABLE kgt_old (x BIGINT)")
    migrations.add("001_ok.sql", "CREATE TABLE IF NOT EXISTS kgt_new (x BIGINT);\n")
    migrations.add("002_drop.sql", DROP)
    args, environ = (("up", "-y", *how), env()) if how != "KG_LINT" else \
        (("up", "-y"), env(KG_LINT="error"))
    proc = run_kgmigrate(db_url, migrations.path, *args, environ=environ)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ": ban-drop-table: " in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        ("Error: --lint=error: 1 error in pending migrations; nothing was applied. Fix them, or "
        "ignore one with a `-- squawk-ignore RULE` comment above the statement saying why")]
    assert tracked(db) == [] and not table_exists(db, "kgt_new") and table_exists(db, "kgt_old")


def test_error_mode_applies_when_there_are_only_warnings(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")  # prefer-bigint-over-int
    result = kgmigrate("up", "-y", "--lint", "error")
    assert result.exit_code == 0, result.output
    assert "prefer-bigint-over-int: 1 warning in 1 file, first " in result.stdout
    assert tracked(db) == [1]


def test_up_shows_errors_in_full_and_warnings_per_rule(kgmigrate, migrations, db):
    for n in range(1, 7):
        migrations.add(f"{n:03d}_t{n}.sql", f"CREATE TABLE kgt_{n} (x INTEGER);\n")
    drop = migrations.add("007_drop.sql", DROP)
    first = migrations.path / "001_t1.sql"
    result = kgmigrate("up", input="n\n")
    out = result.stdout
    assert f"{drop}:1:1: ban-drop-table: Dropping a table may break existing clients." in out
    assert f"prefer-bigint-over-int: 6 warnings in 6 files, first {first}:1:" in out
    assert ": prefer-bigint-over-int: " not in out  # no warning line of its own
    assert "-v shows every warning" in out
    verbose = kgmigrate("up", "-v", input="n\n").stdout
    assert verbose.count(": prefer-bigint-over-int: ") == 6
    linted = kgmigrate("lint").stdout
    assert linted.count(": prefer-bigint-over-int: ") == 6


def test_dry_run_lints_and_predicts_the_refusal(kgmigrate, migrations, db):
    migrations.add("001_drop.sql", DROP)
    result = kgmigrate("up", "--dry-run")
    assert result.exit_code == 0 and ": ban-drop-table: " in result.stdout
    assert "Dry run: nothing was applied" in result.stdout
    refused = kgmigrate("up", "--dry-run", "--lint", "error")
    assert refused.exit_code == 1 and "--lint=error: 1 error" in refused.output


def test_off_skips_lint_and_applied_files_are_never_linted(kgmigrate, migrations, db):
    migrations.add("001_drop.sql", DROP)
    result = kgmigrate("up", "-y", "--lint", "off")
    assert result.exit_code == 0 and "Lint" not in result.stdout
    migrations.add("002_t.sql", "CREATE TABLE IF NOT EXISTS kgt_t (x BIGINT);\n")
    result = kgmigrate("up", "-y", "--lint", "error")
    assert result.exit_code == 0, result.output
    assert "001_drop.sql" not in result.stdout
    assert "Lint: no findings in 1 file." in result.stdout


def test_squawk_missing_warns_in_one_line_and_applies(migrations, db_url, db, tmp_path):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x BIGINT);\n")
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y",
                         environ=env(KG_SQUAWK=str(tmp_path / "gone")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        (f"Warning: lint skipped: squawk not found: KG_SQUAWK={tmp_path / 'gone'} is not an "
        f"executable file")]
    assert tracked(db) == [1]


def test_squawk_missing_under_error_mode_refuses_in_one_line(migrations, db_url, db, tmp_path):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x BIGINT);\n")
    proc = run_kgmigrate(db_url, migrations.path, "up", "-y", "--lint", "error",
                         environ=env(KG_SQUAWK=str(tmp_path / "gone")))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: squawk not found: ")
    assert "--lint=error needs it" in lines[0] and "Traceback" not in proc.stderr
    assert tracked(db) == []


def test_squawk_failing_warns_under_warn_and_refuses_under_error(kgmigrate, migrations, db,
                                                                 tmp_path):
    (tmp_path / ".squawk.toml").write_text("excluded_rules = 42\n")
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x BIGINT);\n")
    refused = kgmigrate("up", "-y", "--lint", "error")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: squawk failed (exit 1): Configuration error")
    assert tracked(db) == []
    applied = kgmigrate("up", "-y")
    assert applied.exit_code == 0
    assert applied.stderr.startswith("Warning: lint skipped: squawk failed (exit 1): ")
    assert tracked(db) == [1]
