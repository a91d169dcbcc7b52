"""A branch merged after a later number was deployed: refused, allowed, recorded, reversed,
renumbered."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.kgm import table_exists, tracked


def _order(db) -> list[int]:
    return [r[0] for r in db.execute(
        "SELECT version FROM public.schema_migrations ORDER BY applied_order")]


@pytest.fixture
def late(kgmigrate, migrations, db):
    """001, 002, 003 and 005 applied (a branch deployed to staging), then 004 merged to main."""
    for v, name in ((1, "a"), (2, "b"), (3, "c"), (5, "e")):
        migrations.add(f"00{v}_{name}.sql", f"CREATE TABLE kgt_{name} (x INTEGER);\n")
        migrations.add(f"00{v}_{name}.down.sql", f"DROP TABLE kgt_{name};\n")
    assert kgmigrate("up", "-y").exit_code == 0
    migrations.add("004_d.sql", "-- kgmigrate:requires 002\nCREATE TABLE kgt_d (x INTEGER);\n")
    migrations.add("004_d.down.sql", "DROP TABLE kgt_d;\n")
    migrations.add("006_f.sql", "CREATE TABLE kgt_f (x INTEGER);\n")
    return migrations


def test_up_and_dry_run_refuse_naming_the_file_what_is_above_and_both_ways_out(
        kgmigrate, late, db):
    for args in (["up", "-y"], ["up", "--dry-run"]):
        result = kgmigrate(*args)
        assert result.exit_code == 1, result.output
        assert "004_d.sql is numbered below applied version(s) 005" in result.output
        assert "kgmigrate renumber 004_d.sql" in result.output
        assert "--allow-out-of-order (env KG_ALLOW_OUT_OF_ORDER=1)" in result.output
    assert tracked(db) == [1, 2, 3, 5] and not table_exists(db, "kgt_f")


def test_status_shows_the_out_of_order_file(kgmigrate, late):
    result = kgmigrate("status")
    assert result.exit_code == 0, result.output
    assert "→ Migration 004 - d  [out of order: below applied 005]" in result.stdout
    assert "1 pending file(s) numbered below applied versions" in result.stderr
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert status["out_of_order"] == [{"version": 4, "name": "d", "applied_above": [5]}]
    assert [a["applied_order"] for a in status["applied"]] == [1, 2, 3, 4]


def test_allowed_it_runs_says_so_is_recorded_in_applied_order_and_down_follows_it(
        kgmigrate, late, db, monkeypatch):
    monkeypatch.setenv("KG_ALLOW_OUT_OF_ORDER", "1")
    dry = kgmigrate("up", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "→ Migration 004 - d  [out of order: after 005]" in dry.output
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Migration 004 - d  [out of order: after 005]" in result.output
    assert _order(db) == [1, 2, 3, 5, 4, 6]
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert {a["version"]: a["applied_order"] for a in status["applied"]} == {
        1: 1, 2: 2, 3: 3, 5: 4, 4: 5, 6: 6}
    (late.path / "006_f.sql").unlink()  # keep the plan to files with down files
    db.execute("DELETE FROM public.schema_migrations WHERE version = 6")
    result = kgmigrate("down", "--steps", "2", "-y")
    assert result.exit_code == 0, result.output
    assert result.output.index("Reverse 004") < result.output.index("Reverse 005")
    assert tracked(db) == [1, 2, 3]
    assert not table_exists(db, "kgt_d") and not table_exists(db, "kgt_e")


def test_applied_order_is_added_in_place_from_applied_at_then_version(kgmigrate, late, db):
    db.execute("ALTER TABLE public.schema_migrations DROP COLUMN applied_order")
    db.execute("UPDATE public.schema_migrations SET applied_at = '2024-01-02' WHERE version = 1")
    db.execute("UPDATE public.schema_migrations SET applied_at = '2024-01-01' "
               "WHERE version IN (2, 5)")
    status = json.loads(kgmigrate("status", "--json").stdout)  # reads, changes nothing
    assert [a["applied_order"] for a in status["applied"]] == [None] * 4
    assert kgmigrate("up", "-y", "--allow-out-of-order").exit_code == 0
    assert _order(db) == [2, 5, 1, 3, 4, 6]


def _git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def test_renumber_moves_the_file_its_down_file_and_its_dependents_with_git(
        kgmigrate, late, db, tmp_path):
    late.add("007_g.sql", "-- kgmigrate:requires 004_d 006\nSELECT 1;\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "main")
    result = kgmigrate("renumber", "004_d.sql")
    assert result.exit_code == 0, result.output
    m = late.path
    assert result.output.splitlines() == [
        f"git mv {m / '004_d.sql'} {m / '008_d.sql'}",
        f"git mv {m / '004_d.down.sql'} {m / '008_d.down.sql'}",
        f"git mv {m / '007_g.sql'} {m / '009_g.sql'}",
        f"{m / '009_g.sql'}: requires 004_d -> 008_d"]
    renames = _git(tmp_path, "diff", "--cached", "--name-status", "-M").split()
    assert renames[:6] == [
        "R100", "schema/migrations/004_d.down.sql", "schema/migrations/008_d.down.sql",
        "R100", "schema/migrations/004_d.sql", "schema/migrations/008_d.sql"]
    assert renames[7:] == ["schema/migrations/007_g.sql", "schema/migrations/009_g.sql"]
    assert (m / "009_g.sql").read_text().startswith("-- kgmigrate:requires 008_d 006\n")
    result = kgmigrate("up", "-y")  # nothing out of order any more
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1, 2, 3, 5, 6, 8, 9]


def test_renumber_refuses_applied_files_taken_numbers_and_references_that_cannot_follow(
        kgmigrate, late, db):
    result = kgmigrate("renumber", "003_c.sql")
    assert result.exit_code == 1
    assert "003_c.sql is applied" in result.output
    result = kgmigrate("renumber", "4", "5")
    assert result.exit_code == 1
    assert "version 005 is taken; the next free number is 007" in result.output
    late.add("006_f.sql", "-- kgmigrate:requires 004\nSELECT 1;\n")
    result = kgmigrate("renumber", "004_d.sql", "9")
    assert result.exit_code == 1
    assert ("006_f.sql requires it (line 1) and is numbered below 009: without NEW both move"
            in result.output)
    assert (late.path / "004_d.sql").exists() and (late.path / "004_d.down.sql").exists()
    result = kgmigrate("renumber", "006", "10")  # outside git: a plain rename, said so
    assert result.exit_code == 0, result.output
    assert "(not tracked by git: renamed without it)" in result.output
    assert (late.path / "010_f.sql").exists()


def test_renumber_fixes_two_branches_that_took_the_same_number(kgmigrate, late, db):
    late.add("005_x.sql", "CREATE TABLE kgt_x (x INTEGER);\n")  # merged beside applied 005_e
    late.add("005_x.down.sql", "DROP TABLE kgt_x;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "(`kgmigrate renumber 005_x.sql`)" in result.output
    result = kgmigrate("renumber", "005_e.sql")  # the applied one keeps its number
    assert result.exit_code == 1 and (late.path / "005_e.sql").exists()
    result = kgmigrate("renumber", "005_x.sql")
    assert result.exit_code == 0, result.output
    assert not (late.path / "005_x.sql").exists()
    assert (late.path / "007_x.sql").exists() and (late.path / "007_x.down.sql").exists()
    assert kgmigrate("up", "-y", "--allow-out-of-order").exit_code == 0
    assert tracked(db) == [1, 2, 3, 4, 5, 6, 7]
