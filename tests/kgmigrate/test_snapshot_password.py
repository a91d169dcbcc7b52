"""Passwords reach pg_dump, pg_restore and psql only through the environment, never argv or output."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from kgmigrate.postgres.clientenv import client_target
from kgmigrate.postgres.programs import find_binary
from kgmigrate.settings import mask_url
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


def _round_trips(kgmigrate, migrations, db, url: str):
    """Migrate through `url`, then snapshot and restore in each format; yield each pair of
    results and the snapshot's path (the restore brought the rows back)."""
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
        yield snap, restored, path


def test_snapshot_and_restore_with_a_password(secured, kgmigrate, migrations, db):
    role, url = secured
    for snap, restored, path in _round_trips(kgmigrate, migrations, db, url):
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
    with client_target(conninfo, "test") as (target, env):
        argv = dump_command(find_binary("pg_dump"), target, "custom", 1)
        checked = Checked(tmp_path / "x.dump", "custom", None)
        commands = restore_commands(checked, target, 15)
    assert env["PGPASSWORD"] == PASSWORD
    assert "--dbname=" in " ".join(argv) and "db.example" in " ".join(argv)
    for arg in [*argv, *(a for cmd in commands for a in cmd)]:
        assert PASSWORD not in arg and quote(PASSWORD, safe="") not in arg
        assert "password=" not in arg.lower()


SSL_SECRET = "ssl-key-passphrase-" + uuid.uuid4().hex[:8]

# Stands in for a PostgreSQL client program: records its command line and the service file it was
# given (mode and content) while it runs, then runs the real program.
WRAPPER = """#!/bin/sh
{{ echo "ARGV $0 $*"
   if [ -n "$PGSERVICEFILE" ]; then
     echo "SERVICEFILE $PGSERVICEFILE $(stat -c %a "$PGSERVICEFILE") $(stat -c %a "$(dirname "$PGSERVICEFILE")")"
     sed 's/^/SERVICE /' "$PGSERVICEFILE"
   fi; }} >> {log}
exec {real} "$@"
"""


@pytest.fixture
def recording_clients(tmp_path, monkeypatch):
    """Put recording wrappers of pg_dump, pg_restore and psql first in kgmigrate's search."""
    folder, log = tmp_path / "wrapped-bin", tmp_path / "clients.log"
    folder.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        wrapper = folder / name
        wrapper.write_text(WRAPPER.format(log=log, real=find_binary(name)))
        wrapper.chmod(0o755)
    monkeypatch.setenv("KG_PG_BINDIR", str(folder))
    return log


@pytest.mark.parametrize("form", ["url", "keywords"])
def test_sslpassword_is_masked_and_never_on_a_childs_argv(form, recording_clients, kgmigrate,
                                                          migrations, db, db_url):
    if form == "url":
        url = f"{db_url}&sslpassword={quote(SSL_SECRET, safe='')}"
    else:
        params = psycopg.conninfo.conninfo_to_dict(db_url)
        url = psycopg.conninfo.make_conninfo(**params, sslpassword=SSL_SECRET)
    outputs = []
    for snap, restored, path in _round_trips(kgmigrate, migrations, db, url):
        manifest = Path(path + ".json").read_text()
        assert "sslpassword" in manifest and SSL_SECRET not in manifest
        outputs += [snap.output, restored.output]
    for output in outputs:
        assert SSL_SECRET not in output
        assert "sslpassword=***" in output  # the header names the database, masked
    log = recording_clients.read_text().splitlines()
    argvs = [ln for ln in log if ln.startswith("ARGV") and "--version" not in ln]
    assert {Path(a.split()[1]).name for a in argvs} == {"pg_dump", "pg_restore", "psql"}
    assert all(SSL_SECRET not in a for a in argvs)
    # The secret reached the programs through a private service file, gone afterwards.
    services = [ln.split() for ln in log if ln.startswith("SERVICEFILE")]
    assert len(services) == len([a for a in argvs if "--list" not in a]) == 5
    assert {(mode, folder_mode) for _, _, mode, folder_mode in services} == {("600", "700")}
    assert f"SERVICE sslpassword={SSL_SECRET}" in log
    assert not any(Path(path).exists() for _, path, _, _ in services)


@pytest.mark.parametrize(("conninfo", "shown"), [
    ("postgresql://u:pw1@h/db?sslpassword=pw2&sslmode=require&oauth_client_secret=pw3",
     "postgresql://u:***@h/db?sslpassword=***&sslmode=require&oauth_client_secret=***"),
    ("host=h sslpassword='p w2' password=pw1 user=u",
     "host=h sslpassword=*** password=*** user=u"),
])
def test_every_secret_parameter_is_masked(conninfo, shown):
    assert mask_url(conninfo) == shown


def test_a_named_service_is_carried_into_the_private_service_file(tmp_path, monkeypatch):
    user_file = tmp_path / "pg_service.conf"
    user_file.write_text("[mine]\nhost=db.example\nport=5433\n")
    monkeypatch.setenv("PGSERVICEFILE", str(user_file))
    with client_target(f"service=mine dbname=kg sslpassword={SSL_SECRET}", "test") as (args, env):
        assert args == ["--dbname=dbname=kg service=kgmigrate"]
        ours = Path(env["PGSERVICEFILE"])
        assert ours != user_file
        assert ours.read_text().splitlines() == [
            "[kgmigrate]", "host=db.example", "port=5433", f"sslpassword={SSL_SECRET}"]
    assert not ours.exists() and not ours.parent.exists()
