"""Snapshot and restore against a real PostgreSQL: round trips, undoing migrations, atomicity."""

from __future__ import annotations

import json
import uuid

import pytest
from psycopg import sql

from tests.support.snapshots import MIGRATION_002, fingerprint, seed, take

FORMATS = ["custom", "plain"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_awkward_data(fmt, kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    before = fingerprint(db)
    assert len(before["data"]["app.things"]) == 5
    path = take(kgmigrate, "--format", fmt)
    assert path.suffix == (".dump" if fmt == "custom" else ".sql")
    db.execute("DELETE FROM app.things WHERE t IS NULL")
    db.execute("UPDATE app.things SET j = '{}' WHERE j IS NOT NULL")
    db.execute("SELECT nextval('app.things_id_seq')")
    assert fingerprint(db) != before

    result = kgmigrate("restore", "-y", str(path))
    assert result.exit_code == 0, result.output
    assert "Restored" in result.output
    assert fingerprint(db) == before
    assert db.execute("SELECT app.plus_one(1)").fetchone()[0] == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_restore_undoes_a_later_migration(fmt, kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    before = fingerprint(db)
    path = take(kgmigrate, "--format", fmt)
    migrations.add("002_later.sql", MIGRATION_002)
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0
    assert db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 2

    result = kgmigrate("restore", "-y", str(path))
    assert result.exit_code == 0, result.output
    assert "Schema version: 001" in result.output
    assert fingerprint(db) == before
    assert db.execute("SELECT to_regclass('app.later')").fetchone()[0] is None
    assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'extra'"
                      ).fetchone()[0] == 0
    assert [r[0] for r in db.execute("SELECT version FROM schema_migrations")] == [1]
    # The migration can be applied again afterwards: the rollback plan works end to end.
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0


def test_damaged_file_is_refused_and_database_untouched(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate)
    migrations.add("002_later.sql", MIGRATION_002)
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0
    current = fingerprint(db)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    result = kgmigrate("restore", "-y", str(path))
    assert result.exit_code == 1
    assert "checksum does not match" in result.output
    assert fingerprint(db) == current


def test_truncated_file_is_refused(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", "plain")
    db.execute("DELETE FROM app.things")
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    result = kgmigrate("restore", "-y", str(path))
    assert result.exit_code == 1
    assert "checksum does not match" in result.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 0


def test_plain_dump_failing_half_way_leaves_database_unchanged(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", "plain")
    migrations.add("002_later.sql", MIGRATION_002)
    assert kgmigrate("up", "-y", "--no-snapshot").exit_code == 0
    current = fingerprint(db)
    # An old-style dump without a manifest whose second half fails: the first half (schema
    # and rows of app.things) must not survive.
    text = path.read_text(encoding="utf-8")
    cut = text.index("CREATE FUNCTION app.plus_one")
    broken = path.with_name("old_backup.sql")
    broken.write_text(text[:cut] + "SELECT 1 / 0;\n" + text[cut:], encoding="utf-8")

    result = kgmigrate("restore", "-y", "--unverified", str(broken))
    assert result.exit_code == 1
    assert "division by zero" in result.output
    assert "rolled back" in result.output
    assert "has no manifest" in result.output
    assert fingerprint(db) == current


@pytest.mark.parametrize("fmt", FORMATS)
def test_verified_snapshot_failing_in_restore_changes_nothing(fmt, kgmigrate, migrations, db,
                                                             pg_cluster):
    """A valid file whose restore fails late (its owner role is gone) rolls back entirely."""
    role = f"kgsnap_owner_{uuid.uuid4().hex[:8]}"
    with db.transaction():
        db.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        seed(migrations, kgmigrate, db)
        db.execute(sql.SQL("CREATE TABLE app.zz_owned (x int); ALTER TABLE app.zz_owned OWNER "
                           "TO {}").format(sql.Identifier(role)))
        path = take(kgmigrate, "--format", fmt)
        db.execute(sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(sql.Identifier(role),
                                                                   sql.Identifier(role)))
        db.execute("INSERT INTO app.things (t) VALUES ('added later')")
        current = fingerprint(db)
        result = kgmigrate("restore", "-y", str(path))
        assert result.exit_code == 1
        assert f'role "{role}" does not exist' in result.output
        assert "database is as it was" in result.output
        assert fingerprint(db) == current
    finally:
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_file_without_manifest_restores_with_warning(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    before = fingerprint(db)
    path = take(kgmigrate)
    path.with_name(path.name + ".json").unlink()
    db.execute("DROP SCHEMA app CASCADE")
    result = kgmigrate("restore", "-y", "--unverified", str(path))
    assert result.exit_code == 0, result.output
    assert "no manifest" in result.stderr
    assert "unverified" in result.output
    assert fingerprint(db) == before


def test_truncated_plain_file_without_manifest_is_refused(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", "plain")
    old = tmp_path / "old.sql"
    text = path.read_text(encoding="utf-8")
    old.write_text(text[: len(text) // 2], encoding="utf-8")
    result = kgmigrate("restore", "-y", "--unverified", str(old))
    assert result.exit_code == 1
    assert "looks truncated" in result.output


def test_manifest_records_the_snapshot(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate)
    m = json.loads(path.with_name(path.name + ".json").read_text())
    assert m["file"] == path.name and m["format"] == "custom"
    assert m["size"] == path.stat().st_size and len(m["sha256"]) == 64
    assert m["database"] == db.info.dbname and m["schema_version"] == 1
    assert m["server_version"].startswith("15.") and m["pg_dump_version"].startswith("15.")
    assert m["kgmigrate_version"] and m["created_at"]
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == m["sha256"]


@pytest.mark.parametrize("inject, reason", [
    ("\\connect postgres\n", "psql command '\\\\connect postgres'"),
    ("\\! touch /tmp/kg-should-not-run\n", "psql command '\\\\! touch"),
    ("\\unset ON_ERROR_STOP\n", "psql command '\\\\unset ON_ERROR_STOP'"),
    ("COMMIT;\n", "ends a transaction itself (COMMIT;)"),
])
def test_plain_file_that_could_escape_the_transaction_is_refused(inject, reason, kgmigrate,
                                                                migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", "plain")
    text = path.read_text(encoding="utf-8")
    cut = text.index("CREATE FUNCTION app.plus_one")
    old = tmp_path / "old.sql"
    old.write_text(text[:cut] + inject + text[cut:], encoding="utf-8")
    db.execute("DELETE FROM app.things")
    result = kgmigrate("restore", "-y", "--unverified", str(old))
    assert result.exit_code == 1
    assert "cannot be restored in one transaction" in result.output
    assert reason in result.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 0


def test_copy_data_that_looks_like_commands_is_not_a_hazard(kgmigrate, migrations, db):
    """Rows whose text starts with a backslash, a newline or NULL come back untouched."""
    seed(migrations, kgmigrate, db)
    db.execute("CREATE TABLE app.notes (t text, n int)")  # t starts each COPY line
    db.execute(r"""INSERT INTO app.notes VALUES (E'\\connect x', 1), (E'\nline', 2),
                   (E'\\.', 3), (E'\\unset y', 4), ('COMMIT;', 5), (NULL, 6),
                   (E'\\! echo', 7), (E'\tTAB', 8)""")
    before = fingerprint(db)
    path = take(kgmigrate, "--format", "plain")
    path.with_name(path.name + ".json").unlink()  # unverified: the scan applies
    db.execute("DELETE FROM app.things")
    result = kgmigrate("restore", "-y", "--unverified", str(path))
    assert result.exit_code == 0, result.output
    assert fingerprint(db) == before
