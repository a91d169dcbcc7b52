"""Fixtures shared by the whole suite: a real PostgreSQL cluster, fresh databases, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tests.support.kgm import REPO
from tests.support.pg import (
    create_database,
    destroy_cluster,
    drop_database,
    make_cluster,
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Keep the developer's database settings and the project's .kgdata out of every test."""
    for var in ("KG_DATABASE_URL", "KG_MIGRATIONS_DIR", "KG_BACKUPS_DIR", "KG_NO_BASELINE",
                "KG_LOCALDB_NAME", "KG_PG_BINDIR", "KG_MIGRATIONS_TABLE", "KG_REPEATABLE_DIR",
                "KG_ALLOW_OUT_OF_ORDER", "PGHOST", "PGHOSTADDR",
                "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "KG_ADMIN_TOKEN",
                "KG_API_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL", "KG_SCRATCH_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KG_LOCALDB_DIR", str(tmp_path / "no-localdb-here"))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the session (fsync off, unix socket in /tmp)."""
    cluster = make_cluster()
    yield cluster
    destroy_cluster(cluster)


@pytest.fixture
def db_url(pg_cluster):
    """A new, empty database for this test; dropped afterwards."""
    url = create_database(pg_cluster)
    yield url
    drop_database(pg_cluster, url)


@pytest.fixture
def db(db_url):
    """An autocommit connection to the test's database."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def migrations(tmp_path):
    """A writer for an empty migrations folder: migrations.add("004_x.sql", text)."""

    class Dir:
        path = tmp_path / "schema" / "migrations"

        def add(self, name: str, text: str, newline: str = "\n") -> Path:
            p = self.path / name
            p.write_bytes(text.replace("\n", newline).encode("utf-8"))
            return p

        def baseline(self, text: str) -> Path:
            p = self.path.parent / "00_baseline.sql"
            p.write_text(text, encoding="utf-8")
            return p

    Dir.path.mkdir(parents=True)
    return Dir()


@pytest.fixture
def kgmigrate(db_url, migrations, tmp_path):
    """Run the kgmigrate CLI in-process against the test database: kgmigrate("up", "-y")."""
    from kgmigrate.cli import cli

    def run(*args: str, input: str | None = None, url: str | None = None,
            migrations_dir: Path | None = None):
        base = ["--database-url", url or db_url,
                "--migrations-dir", str(migrations_dir or migrations.path),
                "--backups-dir", str(tmp_path / "backups")]
        return CliRunner().invoke(cli, [*base, *args], input=input, catch_exceptions=False)

    return run


@pytest.fixture
def repo_schema() -> Path:
    """The project's own schema/migrations folder."""
    return REPO / "schema" / "migrations"


def pytest_configure(config):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
