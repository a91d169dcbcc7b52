"""What `restore` trusts: files kgmigrate did not write need --unverified, manifests are checked
against the dumps they vouch for, a damaged manifest is one bad entry, snapshot files are private."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.snapshots import fingerprint, seed, snapshot_files, take

CRAFTED = ("COPY (SELECT 1) TO PROGRAM 'psql -d \"$PGDATABASE\" -c \"DELETE FROM app.things\"';\n"
           "-- PostgreSQL database dump complete\n")


def test_crafted_file_is_refused_and_database_untouched(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    before = fingerprint(db)
    (tmp_path / "backups").mkdir()
    crafted = tmp_path / "backups" / "snapshot_evil.sql"
    crafted.write_text(CRAFTED)
    refused = kgmigrate("restore", "-y", str(crafted))
    assert refused.exit_code == 1
    assert "was not written by kgmigrate (it has no manifest)" in refused.output
    assert "--unverified" in refused.output
    forced = kgmigrate("restore", "-y", "--unverified", str(crafted))
    assert forced.exit_code == 1
    assert "does not start with pg_dump's header" in forced.output
    assert fingerprint(db) == before


def test_copy_to_program_under_a_real_header_is_refused(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", "plain")
    text = path.read_text(encoding="utf-8")
    cut = text.index("CREATE FUNCTION app.plus_one")
    evil = tmp_path / "evil.sql"
    evil.write_text(text[:cut] + "COPY (SELECT 1) TO PROGRAM 'true';\n" + text[cut:])
    before = fingerprint(db)
    result = kgmigrate("restore", "-y", "--unverified", str(evil))
    assert result.exit_code == 1
    assert "runs a program or opens a file on the server" in result.output
    assert fingerprint(db) == before


@pytest.mark.parametrize("how", ["no manifest", "symlink", "outside"])
def test_a_file_kgmigrate_did_not_write_needs_unverified(how, kgmigrate, migrations, db,
                                                         tmp_path):
    seed(migrations, kgmigrate, db)
    before = fingerprint(db)
    path = take(kgmigrate)
    if how == "no manifest":
        path.with_name(path.name + ".json").unlink()
        target = path
    elif how == "symlink":
        target = path.with_name("linked.dump")
        target.symlink_to(path)
        target.with_name(target.name + ".json").symlink_to(path.with_name(path.name + ".json"))
    else:
        target = tmp_path / path.name
        path.rename(target)
        path.with_name(path.name + ".json").rename(tmp_path / (path.name + ".json"))
    db.execute("DELETE FROM app.things")
    refused = kgmigrate("restore", "-y", str(target))
    assert refused.exit_code == 1 and "--unverified" in refused.output
    reason = {"no manifest": "it has no manifest", "symlink": "it is a symbolic link",
              "outside": "it is outside the backups folder"}[how]
    assert reason in refused.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 0
    # The prompt says what the file claims to be, and "no" changes nothing.
    asked = kgmigrate("restore", "--unverified", str(target), input="n\n")
    assert asked.exit_code == 0, asked.output
    assert ("Restore this unverified file? It claims to be a pg_dump 15." in asked.output
            and f"custom dump of database {db.info.dbname}" in asked.output)
    assert "Nothing restored." in asked.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 0
    done = kgmigrate("restore", "-y", "--unverified", str(target))
    assert done.exit_code == 0, done.output
    assert fingerprint(db) == before


@pytest.mark.parametrize("fmt", ["custom", "plain"])
@pytest.mark.parametrize(("field", "value", "shown"), [
    ("database", "production", "database 'production'"),
    ("pg_dump_version", "16.1", "pg_dump version '16.1'"),
    ("created_at", "2020-01-01T00:00:00+00:00", "taken at '2020-01-01T00:00:00+00:00'"),
])
def test_an_edited_manifest_is_refused(fmt, field, value, shown, kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate, "--format", fmt)
    manifest = path.with_name(path.name + ".json")
    data = json.loads(manifest.read_text())
    data[field] = value
    manifest.write_text(json.dumps(data))
    db.execute("DELETE FROM app.things")
    result = kgmigrate("restore", "-y", str(path))
    if fmt == "plain" and field in ("database", "created_at"):
        # A plain dump records neither: shown as the manifest's claim, never as verified.
        assert result.exit_code == 0, result.output
        assert "as the manifest claims" in result.output
        return
    assert result.exit_code == 1
    assert "does not match the dump" in result.output and shown in result.output
    assert db.execute("SELECT count(*) FROM app.things").fetchone()[0] == 0


def test_what_was_checked_and_what_is_a_claim_are_told_apart(kgmigrate, migrations, db):
    seed(migrations, kgmigrate, db)
    path = take(kgmigrate)
    result = kgmigrate("restore", "-y", str(path))
    assert result.exit_code == 0, result.output
    assert "checksum and header verified" in result.output
    assert "Snapshot schema version: 001 (the manifest's claim" in result.output


WRONG_TYPES = ["[]", "null", "3", '"a string"', '{"size": "big"}', "{}"]


@pytest.mark.parametrize("bad", WRONG_TYPES)
def test_a_manifest_that_is_not_an_object_is_one_bad_entry(bad, kgmigrate, migrations, db,
                                                           tmp_path):
    seed(migrations, kgmigrate, db)
    good = take(kgmigrate)
    broken = take(kgmigrate, "-o", str(tmp_path / "backups" / "snapshot_x_20200101_000000.dump"))
    broken.with_name(broken.name + ".json").write_text(bad)

    restored = kgmigrate("restore", "-y", str(broken))
    assert restored.exit_code == 1
    assert "is not valid" in restored.output and "Traceback" not in restored.output

    listed = kgmigrate("restore", "--list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert any(good.name in ln and "unverified" not in ln for ln in lines)
    assert any(broken.name in ln and "manifest unreadable" in ln for ln in lines)


def test_keep_prunes_past_a_bad_manifest(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    folder = tmp_path / "backups"
    old = take(kgmigrate, "-o", str(folder / f"snapshot_{db.info.dbname}_20200101_000000.dump"))
    old.with_name(old.name + ".json").write_text("[]")
    os.utime(old, (0, 0))
    result = kgmigrate("snapshot", "--keep", "1")
    assert result.exit_code == 0, result.output
    assert f"Removed old snapshot {old.name}" in result.output
    assert len([n for n in snapshot_files(folder) if n.endswith(".dump")]) == 1


def test_snapshot_files_are_private_whatever_the_umask(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    old = os.umask(0)
    try:
        path = take(kgmigrate)
        plain = take(kgmigrate, "--format", "plain")
    finally:
        os.umask(old)
    folder = tmp_path / "backups"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for p in (path, plain):
        for f in (p, p.with_name(p.name + ".json")):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_an_open_backups_folder_is_made_private(kgmigrate, migrations, db, tmp_path):
    seed(migrations, kgmigrate, db)
    folder = tmp_path / "backups"
    folder.mkdir()
    folder.chmod(0o777)
    take(kgmigrate)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
