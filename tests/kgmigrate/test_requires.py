"""`-- kgmigrate:requires`: checked before anything runs, honoured by `down`."""

from __future__ import annotations

import pytest

from tests.support.kgm import table_exists, tracked


def _three(migrations) -> None:
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("001_a.down.sql", "DROP TABLE kgt_a;\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    migrations.add("002_b.down.sql", "DROP TABLE kgt_b;\n")
    migrations.add("003_c.sql", "-- adds c, which reads a\n-- kgmigrate:requires 001_a\n"
                                "CREATE VIEW kgt_c AS SELECT x FROM kgt_a;\n")
    migrations.add("003_c.down.sql", "DROP VIEW kgt_c;\n")


@pytest.mark.parametrize("bad, message", [
    ("-- kgmigrate:requires 009\n", "requires 009, which names no migration file"),
    ("-- kgmigrate:requires 004\n", "requires 004, which is not numbered below it"),
    ("-- kgmigrate:requires 001_zzz\n", "requires 001_zzz, but version 001 is 001_a.sql"),
    ("-- kgmigrate:requires 003\n", "requires 003, itself"),
    ("-- kgmigrate:require 001\n", "unknown directive `kgmigrate:require`"),
    ("-- kgmigrate:requires\n", "`kgmigrate:requires` names nothing"),
])
def test_bad_requires_stop_every_command_with_exit_2_naming_file_and_line(
        kgmigrate, migrations, db, bad, message):
    _three(migrations)
    migrations.add("004_d.sql", "CREATE TABLE kgt_d (x INTEGER);\n")
    assert kgmigrate("up", "-y", "--target", "2").exit_code == 0
    migrations.add("003_c.sql", "-- header\n" + bad + "CREATE TABLE kgt_c (x INTEGER);\n")
    where = f"{migrations.path / '003_c.sql'}:2: {message}"
    for args in (["up", "-y"], ["up", "--dry-run"], ["status"], ["status", "--json"],
                 ["down", "-y"], ["graph"], ["renumber", "004_d.sql"]):
        result = kgmigrate(*args)
        assert result.exit_code == 2, (args, result.output)
        assert where in result.output, (args, result.output)
    assert tracked(db) == [1, 2] and not table_exists(db, "kgt_c")
    assert (migrations.path / "004_d.sql").exists()


def test_requirements_are_found_by_the_scanner_only_among_leading_comments(
        kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    # after a block comment: counts; inside a string and after the first statement: does not
    migrations.add("002_b.sql", "/* b */ -- kgmigrate:requires 001\n"
                                "SELECT '\n-- kgmigrate:requires 999\n';\n"
                                "-- kgmigrate:requires 998\n")
    result = kgmigrate("graph")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["001 a", "002 b  requires 001"]


def test_down_refuses_a_file_an_applied_file_requires_and_reverses_both_together(
        kgmigrate, migrations, db):
    _three(migrations)
    assert kgmigrate("up", "-y").exit_code == 0
    # 003 requires 001: reversing 001 alone (after 003 and 002) would break 003.
    assert kgmigrate("down", "--steps", "1", "-y").exit_code == 0  # 003 goes: nothing requires it
    assert kgmigrate("up", "-y").exit_code == 0
    db.execute("UPDATE public.schema_migrations SET applied_order = 10 WHERE version = 1")
    result = kgmigrate("down", "-y")  # 001 was (made) the last applied
    assert result.exit_code == 1, result.output
    assert ("cannot reverse: 001_a.sql is required by applied 003_c.sql (line 2)"
            in result.output)
    assert tracked(db) == [1, 2, 3] and table_exists(db, "kgt_a")
    db.execute("UPDATE public.schema_migrations SET applied_order = 11 WHERE version = 3")
    result = kgmigrate("down", "--steps", "2", "-y")  # 003 and 001 in one plan
    assert result.exit_code == 0, result.output
    assert result.output.index("Reversed 003") < result.output.index("Reversed 001")
    assert tracked(db) == [2] and not table_exists(db, "kgt_a")
