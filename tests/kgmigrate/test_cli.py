"""The command-line contract: exit codes, one-line errors, status --json, colour, startup imports."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import subprocess
import sys

import psycopg
import pytest

from tests.support.kgm import REPO, env, run_kgmigrate


def _one_line_failure(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_cannot_connect_is_one_line(migrations):
    proc = run_kgmigrate("postgresql://kg:s3cret@127.0.0.1:1/kg", migrations.path, "up", "-y")
    line = _one_line_failure(proc)
    assert "cannot connect to the database" in line
    assert "s3cret" not in proc.stdout + proc.stderr


def test_missing_database_is_one_line(pg_cluster, migrations):
    proc = run_kgmigrate(pg_cluster.url("kg_no_such_db"), migrations.path, "status")
    line = _one_line_failure(proc)
    assert 'database "kg_no_such_db" does not exist' in line


def test_missing_migrations_directory_is_one_line(db_url, tmp_path):
    proc = run_kgmigrate(db_url, tmp_path / "nowhere", "up", "-y")
    line = _one_line_failure(proc)
    assert f"migrations directory not found: {tmp_path / 'nowhere'}" in line


@pytest.mark.parametrize("args", [
    ["up", "--target", "abc"],
    ["up", "--no-such-option"],
    ["repair", "two"],
    ["frobnicate"],
    ["status", "--json", "extra"],
])
def test_usage_errors_exit_2(args, kgmigrate, migrations):
    result = kgmigrate(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output


def test_status_json_shape(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    migrations.add("003_c.sql", "CREATE TABLE kgt_c (x INTEGER);\n")
    empty = json.loads(kgmigrate("status", "--json").stdout)
    assert empty == {"current_version": None, "applied": [],
                     "pending": [{"version": 1, "name": "a"}, {"version": 2, "name": "b"},
                                 {"version": 3, "name": "c"}], "out_of_order": [],
                     "repeatable": [], "drifted": [], "down_drifted": [],
                     "squashed_through": None, "squashed_missing": []}
    kgmigrate("up", "-y", "--target", "2")
    result = kgmigrate("status", "--json")
    assert result.exit_code == 0
    status = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert list(status) == ["current_version", "applied", "pending", "out_of_order",
                            "repeatable", "drifted", "down_drifted", "squashed_through",
                            "squashed_missing"]
    assert status["current_version"] == 2
    assert status["pending"] == [{"version": 3, "name": "c"}]
    assert status["drifted"] == []
    for entry, (version, name) in zip(status["applied"], [(1, "a"), (2, "b")]):
        assert list(entry) == ["version", "name", "checksum", "applied_at", "execution_ms",
                               "applied_order", "reversible", "squashed"]
        assert entry["applied_order"] == version
        assert entry["reversible"] is False and entry["squashed"] is False
        assert (entry["version"], entry["name"]) == (version, name)
        assert len(entry["checksum"]) == 64 and int(entry["checksum"], 16) >= 0
        assert isinstance(dt.datetime.fromisoformat(entry["applied_at"]), dt.datetime)
        assert isinstance(entry["execution_ms"], int) and entry["execution_ms"] >= 0


def test_status_text(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    kgmigrate("up", "-y", "--target", "1")
    result = kgmigrate("status")
    assert result.exit_code == 0
    assert "Current version: 001" in result.output
    assert "Applied: 1 migration(s)" in result.output
    assert "  → Migration 002 - b" in result.output


def _run_on_tty(argv: list[str], environ: dict[str, str]) -> str:
    """Run `argv` with stdout and stderr on a pseudo-terminal; return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            cwd=REPO, env=environ)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_tty_and_never_with_no_color(kgmigrate, migrations, db_url):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    argv = [sys.executable, "-m", "kgmigrate", "--database-url", db_url,
            "--migrations-dir", str(migrations.path), "status"]
    plain_env = {k: v for k, v in env().items() if k != "NO_COLOR"}
    assert "\x1b[" in _run_on_tty(argv, plain_env)
    assert "\x1b[" not in _run_on_tty(argv, {**plain_env, "NO_COLOR": "1"})
    piped = subprocess.run(argv, capture_output=True, text=True, check=False, env=plain_env, cwd=REPO)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout + piped.stderr


HEAVY = ("torch", "sentence_transformers", "flask", "transformers", "numpy", "kgserve")


@pytest.mark.parametrize("args", [["--help"], ["up", "--help"], ["--version"]])
def test_help_does_not_import_heavy_packages(args):
    code = ("import sys\nfrom kgmigrate.cli import cli\n"
            f"try:\n    cli({args!r}, prog_name='kgmigrate')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=REPO, env=env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args", [["--help"], ["up", "--help"], ["snapshot", "--help"],
                                  ["lint", "--help"], ["localdb", "--help"], ["--version"]])
def test_help_loads_no_database_driver_and_no_sql_parser(args):
    # What keeps `kgmigrate --help` fast (docs/kgmigrate.md): psycopg and pglast load only when a command runs.
    code = ("import sys\nfrom kgmigrate.cli import main\nsys.argv = ['kgmigrate', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'psycopg', 'pglast'}))\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False, cwd=REPO, env=env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_no_kgmigrate_module_imports_heavy_packages():
    import pkgutil

    import kgmigrate

    names = [m.name for m in pkgutil.walk_packages(kgmigrate.__path__, "kgmigrate.")
             if m.name != "kgmigrate.__main__"]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=REPO, env=env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.fixture
def weak_role_url(pg_cluster, db_url, db):
    """The test database's URL for a login role that may not create anything in public."""
    role = f"kgt_weak_{os.getpid()}"
    db.execute(f"CREATE ROLE {role} LOGIN")
    yield db_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    db.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                     (role,))
    db.execute(f"DROP ROLE {role}")


def test_database_error_outside_a_migration_is_one_line(weak_role_url, migrations):
    migrations.add("001_a.sql", "SELECT 1;\n")
    proc = run_kgmigrate(weak_role_url, migrations.path, "up", "-y")
    line = _one_line_failure(proc)
    assert "permission denied for schema public" in line


def _commands(group, path=("kgmigrate",)):
    import click

    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_command_and_option_has_help_text():
    import click

    from kgmigrate.cli import cli

    missing = []
    for path, cmd in _commands(cli):
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for param in cmd.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []
