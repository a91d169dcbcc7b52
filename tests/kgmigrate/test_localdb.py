"""`kgmigrate localdb`: the project-local cluster, and a machine without PostgreSQL."""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from kgmigrate.cli import cli
from kgmigrate.postgres import programs as pgtools
from kgmigrate.postgres.localdb import LocalCluster
from tests.support.kgm import REPO, latest_version

SCHEMA = REPO / "schema" / "migrations"


def _kg(*args: str):
    return CliRunner().invoke(cli, ["--migrations-dir", str(SCHEMA), *args],
                              catch_exceptions=False)


@pytest.fixture
def localdb_dir(monkeypatch):
    """A KG_LOCALDB_DIR in /tmp (the server may run as `postgres`, which must reach it)."""
    root = Path(tempfile.mkdtemp(prefix="kglocal-", dir="/tmp"))
    os.chmod(root, 0o755)
    folder = root / "kgdata"
    monkeypatch.setenv("KG_LOCALDB_DIR", str(folder))
    yield folder
    LocalCluster(folder).stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


def test_localdb_start_status_url_stop(localdb_dir):
    result = _kg("localdb", "status")
    assert result.exit_code == 3
    assert f"No local cluster in {localdb_dir}" in result.output

    result = _kg("localdb", "start")
    assert result.exit_code == 0, result.output
    assert "Local PostgreSQL started: postgresql://" in result.output
    latest = latest_version()
    assert f"Applied {latest} migration(s); schema version {latest:03d}" in result.output

    url = _kg("localdb", "url").output.strip()
    assert str(localdb_dir / "run") in url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT max(version) FROM public.schema_migrations").fetchone() \
            == (latest,)
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        # Only a unix socket in the cluster's folder: it never collides with a system server.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
    expected_owner = "postgres" if os.geteuid() == 0 else getpass.getuser()
    assert Path(data_dir).owner() == expected_owner
    assert (localdb_dir / "run" / ".s.PGSQL.5432").is_socket()

    result = _kg("localdb", "status")
    assert result.exit_code == 0
    assert f"Local PostgreSQL in {localdb_dir}: running at {url}" in result.output

    # Without a database URL, commands use the local database.
    result = _kg("up", "-y")
    assert result.exit_code == 0, result.output
    assert "local database" in result.output
    assert f"Nothing to do. Current schema version: {latest:03d}" in result.output

    result = _kg("localdb", "start")
    assert result.exit_code == 0
    assert "already running" in result.output and "Applied 0 migration(s)" in result.output

    assert "Local PostgreSQL stopped." in _kg("localdb", "stop").output
    result = _kg("localdb", "status")
    assert result.exit_code == 3 and "stopped" in result.output
    assert "was not running" in _kg("localdb", "stop").output


@pytest.mark.slow
def test_localdb_start_without_migrating(localdb_dir):
    result = _kg("localdb", "start", "--no-migrate")
    assert result.exit_code == 0, result.output
    assert "Applied" not in result.output
    with psycopg.connect(_kg("localdb", "url").output.strip()) as conn:
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone() == (None,)


@pytest.fixture
def no_postgresql(monkeypatch, tmp_path):
    """A machine without PostgreSQL: nothing on PATH, a KG_PG_BINDIR pointing nowhere, and no
    /usr/lib/postgresql (the one fixed system folder discovery looks in, hidden here)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("KG_PG_BINDIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(pgtools, "_debian_bindirs", list)
    assert pgtools.find_all("initdb") == [] and pgtools.find_all("psql") == []


@pytest.mark.parametrize("args", [["localdb", "start"], ["up", "-y"], ["status"]])
def test_missing_postgresql_installation_is_one_line(args, no_postgresql, localdb_dir):
    result = _kg(*args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: PostgreSQL server programs (initdb, pg_ctl, postgres) "
                               "not found")
    assert "apt-get install postgresql" in lines[0]
    assert not localdb_dir.exists()
