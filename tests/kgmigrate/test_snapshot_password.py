"""Passwords reach pg_dump, pg_restore and psql only through the environment, never argv or output."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from kgmigrate.postgres.programs import find_binary
from kgmigrate.snapshot.restore import Checked, restore_commands
from kgmigrate.snapshot.take import dump_command
from tests.support.snapshots import MIGRATION_001, fingerprint
from tests.support.waiting import wait_for

PASSWORD = "pa:ss@wo/rd?" + uuid.uuid4().hex[:6]


@pytest.fixture
def secured(pg_cluster, db, db_url):
    """A role that must give its password (scram) and owns the test database; yields its URL."""
    role = f"kgsnap_pw_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(PASSWORD)))
    db.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
        sql.Identifier(db.info.dbname), ident))
    hba = Path(pg_cluster.data) / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n{original}")
    db.execute("SELECT pg_reload_conf()")
    plain = db_url.replace("postgres@", f"{role}@")

    def password_demanded() -> bool:
        try:
            psycopg.connect(plain).close()
        except psycopg.OperationalError:
            return True
        return False

    wait_for(password_demanded, "the pg_hba.conf reload to take effect", 30)  # asynchronous
    try:
        yield role, db_url.replace("postgres@", f"{role}:{quote(PASSWORD, safe='')}@")
    finally:
        hba.write_text(original)
        db.execute("SELECT pg_reload_conf()")
        db.execute(sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(
            sql.Identifier(db.info.dbname)))
        db.execute(sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(ident, ident))


def test_snapshot_and_restore_with_a_password(secured, kgmigrate, migrations, db):
    role, url = secured
    migrations.add("001_app.sql", MIGRATION_001)
    up = kgmigrate("up", "-y", url=url)
    assert up.exit_code == 0, up.output
    db.execute("INSERT INTO app.things (t) VALUES ('secret-protected row')")
    before = fingerprint(db)
    for fmt in ("custom", "plain"):
        snap = kgmigrate("snapshot", "--format", fmt, url=url)
        assert snap.exit_code == 0, snap.output
        path = next(ln.split()[1] for ln in snap.output.splitlines()
                    if ln.startswith("Snapshot:"))
        db.execute("DELETE FROM app.things")
        restored = kgmigrate("restore", "-y", path, url=url)
        assert restored.exit_code == 0, restored.output
        assert fingerprint(db) == before
        for result in (snap, restored):
            assert PASSWORD not in result.output
            assert quote(PASSWORD, safe="") not in result.output
            assert f"{role}:***@" in result.output
        manifest = Path(path + ".json").read_text()
        assert PASSWORD not in manifest and quote(PASSWORD, safe="") not in manifest


def test_wrong_password_fails_cleanly_and_masked(secured, kgmigrate, tmp_path):
    _, url = secured
    wrong = url.replace(quote(PASSWORD, safe=""), "not-the-password")
    result = kgmigrate("snapshot", url=wrong)
    assert result.exit_code == 1
    assert "password authentication failed" in result.output
    assert "not-the-password" not in result.output
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())


@pytest.mark.parametrize("conninfo", [
    f"postgresql://u:{quote(PASSWORD, safe='')}@db.example:5433/kg?sslmode=prefer",
    f"host=db.example port=5433 dbname=kg user=u password='{PASSWORD}'",
], ids=["url", "keywords"])  # the same ids in every process (pytest-xdist); the password varies
def test_argv_never_holds_the_password(conninfo, tmp_path):
    argv, env = dump_command(find_binary("pg_dump"), conninfo, "custom", 1)
    assert env["PGPASSWORD"] == PASSWORD
    assert "--dbname=" in " ".join(argv) and "db.example" in " ".join(argv)
    checked = Checked(tmp_path / "x.dump", "custom", None)
    commands, env2 = restore_commands(checked, conninfo, 15)
    assert env2["PGPASSWORD"] == PASSWORD
    for arg in [*argv, *(a for cmd in commands for a in cmd)]:
        assert PASSWORD not in arg and quote(PASSWORD, safe="") not in arg
        assert "password=" not in arg.lower()
