"""Down files on disk (found beside their migration, never as migrations of their own) and
`kgmigrate new`, which writes the next migration."""

from __future__ import annotations

import json

import pytest

from kgmigrate.files.migrations import discover


def test_down_files_are_companions_not_migrations(kgmigrate, migrations):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    down = migrations.add("001_a.down.sql", "DROP TABLE kgt_a;\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    files = discover(migrations.path)
    assert [(mf.version, mf.name, mf.down) for mf in files] == [(1, "a", down), (2, "b", None)]
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert status["pending"] == [{"version": 1, "name": "a"}, {"version": 2, "name": "b"}]


@pytest.mark.parametrize("files, message", [
    ({"002_gone.down.sql": "SELECT 1;\n"},
     "down file without its migration: 002_gone.down.sql (no 002_gone.sql)"),
    ({"001_a.down.sql": "SELECT 1;\n", "001_other.down.sql": "SELECT 1;\n"},
     "two down files for version 1: 001_a.down.sql and 001_other.down.sql; keep one"),
    ({"001_other.down.sql": "SELECT 1;\n"},
     ("down file 001_other.down.sql does not match its migration 001_a.sql: "
      "name it 001_a.down.sql")),
    ({"x.down.sql": "SELECT 1;\n"}, ("badly named migration file(s) (expected NNN_name.sql): "
                                     "x.down.sql; a reversal is named NNN_name.down.sql")),
])
@pytest.mark.parametrize("command", [("up", "-y"), ("status",), ("down", "-y"), ("new", "x")])
def test_stray_down_files_stop_every_command_naming_the_file(kgmigrate, migrations, db, files,
                                                             message, command):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    for name, text in files.items():
        migrations.add(name, text)
    result = kgmigrate(*command)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in migrations.path.iterdir()) == sorted(["001_a.sql", *files])


def test_duplicate_versions_say_how_to_renumber(kgmigrate, migrations):
    migrations.add("003_mine.sql", "SELECT 1;\n")
    migrations.add("004_a.sql", "SELECT 1;\n")
    migrations.add("004_b.sql", "SELECT 1;\n")
    migrations.add("004_b.down.sql", "SELECT 1;\n")
    for command in (("up", "-y"), ("status",), ("new", "more")):
        result = kgmigrate(*command)
        assert result.exit_code == 1
        assert "duplicate migration version(s): 004_a.sql and 004_b.sql" in result.output
        assert "git mv 004_b.sql 005_b.sql; git mv 004_b.down.sql 005_b.down.sql" \
            in result.output


def test_new_writes_the_next_number_with_the_header(kgmigrate, migrations):
    result = kgmigrate("new", "Add session notes")
    assert result.exit_code == 0, result.output
    path = migrations.path / "001_add_session_notes.sql"
    assert result.output.strip() == str(path)
    assert path.read_text().startswith("-- Migration 001: add_session_notes\n-- Why:")
    migrations.add("0041_x.sql", "SELECT 1;\n")  # the width follows the files there
    result = kgmigrate("new", "Café", "déjà-vu!", "--down")
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(migrations.path / "0042_cafe_deja_vu.sql"),
                                     str(migrations.path / "0042_cafe_deja_vu.down.sql")]
    assert [mf.down is not None for mf in discover(migrations.path)] == [False, False, True]


def test_new_file_applies_as_written(kgmigrate, migrations, db):
    result = kgmigrate("new", "noop", "--down", "--no-transaction")
    assert result.exit_code == 0, result.output
    text = (migrations.path / "001_noop.sql").read_text()
    assert "-- kgmigrate: no-transaction\n" in text
    assert "-- kgmigrate: no-transaction\n" in (migrations.path / "001_noop.down.sql").read_text()
    # A file with only its header is a migration that changes nothing: up and down both run it.
    assert kgmigrate("up", "-y").exit_code == 0
    assert kgmigrate("down", "-y").exit_code == 0


@pytest.mark.parametrize("name", ["!!!", "  ", "___"])
def test_new_refuses_a_name_without_letters_as_usage_error(kgmigrate, migrations, name):
    result = kgmigrate("new", name)
    assert result.exit_code == 2
    assert "has no letters or digits" in result.output
    assert list(migrations.path.iterdir()) == []


def test_new_never_overwrites(kgmigrate, migrations):
    migrations.add("001_a.sql", "SELECT 1;\n")
    # Something already takes the name (discovery skips what is not a file): it is left alone.
    (migrations.path / "002_b.down.sql").mkdir()
    result = kgmigrate("new", "b", "--down")
    assert result.exit_code == 1
    assert "002_b.down.sql already exists; nothing was written" in result.output
    assert (migrations.path / "002_b.down.sql").is_dir()
    assert not (migrations.path / "002_b.sql").exists()  # the up file written first is removed


@pytest.mark.parametrize(("length", "down"), [(250, False), (245, True)])
def test_new_refuses_a_name_too_long_for_the_file_system(kgmigrate, migrations, length, down):
    """NNN_ + the name + .sql (or .down.sql) must fit NAME_MAX (255 bytes here): neither is written."""
    name = "n" * length
    result = kgmigrate("new", name, *(["--down"] if down else []))
    assert result.exit_code == 2, result.output
    assert "the name is too long" in result.output and "at most 255" in result.output
    assert "Traceback" not in result.output
    assert list(migrations.path.iterdir()) == []
    fits = kgmigrate("new", "n" * 240, "--down")
    assert fits.exit_code == 0, fits.output
    assert len(list(migrations.path.iterdir())) == 2
