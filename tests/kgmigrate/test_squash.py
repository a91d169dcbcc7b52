"""`kgmigrate squash`: a baseline built from 001..N gives a fresh database what replaying them does,
leaves existing databases alone, and `down` stops at N."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile

import psycopg
import pytest

from kgmigrate.files.baseline import read_baseline
from kgmigrate.files.migrations import file_checksum
from kgmigrate.postgres.programs import find_binary
from tests.support.history import write_history
from tests.support.kgm import REPO, kgmigrate_running, runner_sleeping, schema_dump, tracked
from tests.support.pg import create_database, drop_database
from tests.support.waiting import wait_for

PREFIX = "kgmigrate_scratch_"


@pytest.fixture
def scratch(pg_cluster):
    """The --scratch-url of the test cluster; asserts afterwards that no scratch database is left."""
    url = pg_cluster.url("postgres")
    yield url
    assert scratch_databases(url) == []


def scratch_databases(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                           (PREFIX + "%",))]


@pytest.fixture
def fresh(pg_cluster):
    """Make more empty databases for the test: fresh() returns a URL; all dropped afterwards."""
    made = []

    def make() -> str:
        made.append(create_database(pg_cluster))
        return made[-1]

    yield make
    for url in made:
        drop_database(pg_cluster, url)


def reloaded_schema(url: str, fresh) -> list[str]:
    """Return the schema after one pg_dump | psql round trip (CHECKs deparse anew on reload)."""
    dump = subprocess.run([str(find_binary("pg_dump")), "--schema-only", "--no-owner", "-d", url],
                          capture_output=True, text=True, check=True).stdout
    target = fresh()
    subprocess.run([str(find_binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
                   input=dump, capture_output=True, text=True, check=True)
    return schema_dump(target)


def rows(url: str, table: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def copy_schema(tmp_path):
    """A copy of the project's schema/ (baseline and migrations) to squash."""
    shutil.copytree(REPO / "schema", tmp_path / "proj")
    return tmp_path / "proj" / "migrations"


def test_project_squashed_baseline_plus_pending_equals_replaying_every_file(
        kgmigrate, tmp_path, scratch, fresh):
    mdir = copy_schema(tmp_path)
    (mdir.parent / "00_baseline.sql").chmod(0o644)  # a source file in git, readable by all
    result = kgmigrate("squash", "--through", "2", "--scratch-url", scratch, migrations_dir=mdir)
    assert result.exit_code == 0, result.output
    assert (mdir.parent / "00_baseline.sql").stat().st_mode & 0o777 == 0o644  # kept its mode
    assert "git rm" in result.output and "002_example_add_query_cache.sql" in result.output
    baseline = read_baseline(mdir.parent / "00_baseline.sql")
    assert baseline.squashed_through == 2
    assert [(f.version, f.name, f.checksum) for f in baseline.squashed] == [
        (1, "baseline", file_checksum(mdir / "001_baseline.sql")),
        (2, "example_add_query_cache", file_checksum(mdir / "002_example_add_query_cache.sql"))]
    for path in mdir.glob("00[12]_*"):
        path.unlink()

    squashed, replayed = fresh(), fresh()
    result = kgmigrate("up", "-y", url=squashed, migrations_dir=mdir)
    assert result.exit_code == 0, result.output
    assert "Migration 003" in result.output and "Migration 002" not in result.output
    assert kgmigrate("up", "-y", url=replayed,
                     migrations_dir=REPO / "schema" / "migrations").exit_code == 0
    # The baseline is pg_dump output reloaded: compare with the replayed schema reloaded once too.
    assert reloaded_schema(squashed, fresh) == reloaded_schema(replayed, fresh)
    with psycopg.connect(squashed) as conn:
        recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    assert recorded[2] == baseline.squashed[1].checksum and sorted(recorded) == [1, 2, 3, 4]
    seed = ("SELECT provider, model_name, embedding_dimensions, precision, backend, active "
            "FROM kg_api.embedding_config")
    assert rows(squashed, f"({seed}) s") == rows(replayed, f"({seed}) s")


def test_long_history_squashed_twice_equals_replaying_every_file(
        kgmigrate, migrations, tmp_path, scratch, fresh):
    write_history(migrations.path, 66)
    original = tmp_path / "original"
    shutil.copytree(migrations.path, original)
    assert kgmigrate("squash", "--through", "40", "--scratch-url", scratch).exit_code == 0
    # Squashing again starts from the squashed baseline, the files up to 040 already gone.
    for path in sorted(migrations.path.glob("*.sql"))[:40]:
        path.unlink()
    result = kgmigrate("squash", "--through", "56", "--scratch-url", scratch)
    assert result.exit_code == 0, result.output
    assert "Baseline 00_baseline.sql" in result.output and "Migration 041" in result.output
    assert len(read_baseline(migrations.path.parent / "00_baseline.sql").squashed) == 56
    for path in sorted(migrations.path.glob("*.sql"))[:16]:
        path.unlink()

    squashed, replayed = fresh(), fresh()
    result = kgmigrate("up", "-y", url=squashed)
    assert result.exit_code == 0, result.output
    assert "Applied: 11 migration(s). Schema version: 066" in result.output  # baseline + 057..066
    assert kgmigrate("up", "-y", url=replayed, migrations_dir=original).exit_code == 0
    assert schema_dump(squashed) == schema_dump(replayed)
    with psycopg.connect(squashed, autocommit=True) as conn:
        assert tracked(conn) == list(range(1, 67))
    with psycopg.connect(replayed) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind IN ('r', 'm') "
            "AND relnamespace = 'hist'::regnamespace ORDER BY 1")]
    assert len(tables) > 20
    for table in tables:  # seeded rows, rows the triggers changed, materialized views
        assert rows(squashed, table) == rows(replayed, table), table
    ticket = "(SELECT last_value, is_called FROM hist.ticket) s"  # sequences go on alike
    assert rows(squashed, ticket) == rows(replayed, ticket)


def test_existing_database_is_unaffected_and_deleted_files_are_no_drift(
        kgmigrate, migrations, scratch, db):
    write_history(migrations.path, 12)
    assert kgmigrate("up", "-y").exit_code == 0
    assert kgmigrate("squash", "--through", "10", "--scratch-url", scratch).exit_code == 0
    for path in sorted(migrations.path.glob("*.sql"))[:10]:
        path.unlink()
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Nothing to do. Current schema version: 012" in result.output
    result = kgmigrate("status")
    assert result.exit_code == 0
    assert "without a file" not in result.output and "Drifted" not in result.output
    assert "Migration 010 - step_10" in result.output and "[squashed]" in result.output
    status = json.loads(kgmigrate("status", "--json").output)
    assert status["squashed_through"] == 10 and status["drifted"] == []
    assert [r["squashed"] for r in status["applied"]] == [True] * 10 + [False] * 2


def test_database_behind_the_squash_without_its_files_is_refused(
        kgmigrate, migrations, tmp_path, scratch, db):
    write_history(migrations.path, 6)
    assert kgmigrate("up", "-y", "--target", "2").exit_code == 0
    assert kgmigrate("squash", "--through", "4", "--scratch-url", scratch).exit_code == 0
    kept = tmp_path / "kept"
    kept.mkdir()
    for path in sorted(migrations.path.glob("*.sql"))[:4]:
        shutil.move(path, kept / path.name)

    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "lacks version(s) 003, 004" in result.output and "Nothing was applied" in result.output
    assert tracked(db) == [1, 2]
    assert "Missing: 003, 004" in kgmigrate("status").output
    for path in kept.iterdir():  # the way out the message names
        shutil.move(path, migrations.path / path.name)
    assert kgmigrate("up", "-y").exit_code == 0
    assert tracked(db) == list(range(1, 7))


def test_down_stops_at_the_squashed_range(kgmigrate, migrations, scratch, db):
    write_history(migrations.path, 4)
    migrations.add("005_more.sql", "CREATE TABLE hist.more (x int);\n")
    migrations.add("005_more.down.sql", "DROP TABLE hist.more;\n")
    migrations.add("004_step_4.down.sql", "DROP INDEX hist.t004_name;\n")
    assert kgmigrate("squash", "--through", "4", "--scratch-url", scratch).exit_code == 0
    result = kgmigrate("up", "-y", "--target", "3")
    assert result.exit_code == 1 and "a fresh database starts at 004" in result.output
    plan = kgmigrate("up", "--dry-run").output  # the squashed files are still on disk
    assert "Pending: 2 migration(s)" in plan and "Migration 004" not in plan
    assert "Baseline 00_baseline.sql (fresh database; records 001..004 as applied)" in plan
    assert kgmigrate("up", "-y").exit_code == 0
    assert tracked(db) == [1, 2, 3, 4, 5]

    for args in (("--to", "2"), ("--steps", "2")):
        result = kgmigrate("down", "-y", "--no-snapshot", *args)
        assert result.exit_code == 1
        assert "cannot reverse" in result.output and "squashed into 00_baseline.sql" in result.output
        assert "kgmigrate down --to 4" in result.output
    assert tracked(db) == [1, 2, 3, 4, 5]
    result = kgmigrate("down", "-y", "--no-snapshot", "--to", "0")  # all but the baseline
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1, 2, 3, 4]


def test_failed_replay_changes_nothing_and_drops_the_scratch_database(
        kgmigrate, migrations, scratch):
    write_history(migrations.path, 3)
    migrations.add("004_bad.sql", "SELECT 1 / 0;\n")
    before = migrations.baseline("-- by hand\nCREATE TABLE by_hand (x int);\n").read_bytes()
    result = kgmigrate("squash", "--through", "4", "--scratch-url", scratch)
    assert result.exit_code == 1
    assert "004_bad.sql:1" in result.output and "division by zero" in result.output
    assert "00_baseline.sql is unchanged" in result.output
    assert (migrations.path.parent / "00_baseline.sql").read_bytes() == before


def test_ctrl_c_drops_the_scratch_database(migrations, pg_cluster, scratch):
    write_history(migrations.path, 2)
    migrations.add("003_slow.sql", "SELECT pg_sleep(60);\n")
    with kgmigrate_running(None, migrations.path, "squash", "--through", "3", "--scratch-url",
                           scratch, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                     signal.SIG_DFL)) as proc:
        with psycopg.connect(scratch, autocommit=True) as conn:
            wait_for(lambda: scratch_databases(scratch) and runner_sleeping(conn),
                     "the replay to reach pg_sleep")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode != 0
    assert not (migrations.path.parent / "00_baseline.sql").exists()


def test_squash_point_must_name_a_file_and_never_go_back(kgmigrate, migrations, scratch):
    write_history(migrations.path, 3)
    result = kgmigrate("squash", "--through", "9", "--scratch-url", scratch)
    assert result.exit_code == 1 and "no migration file numbered 009" in result.output
    assert kgmigrate("squash", "--through", "3", "--scratch-url", scratch).exit_code == 0
    result = kgmigrate("squash", "--through", "2", "--scratch-url", scratch)
    assert result.exit_code == 1 and "already squashed through 003" in result.output


@pytest.mark.slow
def test_default_scratch_is_a_temporary_database_on_the_local_cluster(
        kgmigrate, migrations, monkeypatch, tmp_path):
    root = tempfile.mkdtemp(prefix="kgsq-", dir="/tmp")  # the postgres user must reach it
    os.chmod(root, 0o755)
    monkeypatch.setenv("KG_LOCALDB_DIR", root)
    write_history(migrations.path, 3)
    try:
        result = kgmigrate("squash", "--through", "3")
        assert result.exit_code == 0, result.output
        assert "temporary database on the project-local PostgreSQL" in result.output
        from kgmigrate.postgres.localdb import project_cluster

        cluster = project_cluster()
        assert not cluster.running()  # squash started it, so squash stopped it
        cluster.start()
        assert scratch_databases(cluster.url("postgres")) == []
        cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_up_runs_a_baseline_made_by_hand_with_pg_dump(kgmigrate, migrations, db, db_url, fresh):
    db.execute("CREATE SCHEMA app; CREATE TABLE app.items (id serial PRIMARY KEY, name text)")
    dump = subprocess.run([str(find_binary("pg_dump")), "--schema-only", "-d", db_url],
                          capture_output=True, text=True, check=True).stdout
    assert "\n\\restrict " in dump and "\n\\unrestrict " in dump
    migrations.baseline(dump)
    migrations.add("001_next.sql", "INSERT INTO app.items (name) VALUES ('x');\n")
    target = fresh()
    result = kgmigrate("up", "-y", url=target)
    assert result.exit_code == 0, result.output
    assert rows(target, "app.items") == [(1, "x")]


@pytest.mark.parametrize("text, line, command", [
    ("\\restrict abc\n\\set x 1\nSELECT 1;\n", 2, "\\set"),
    ("SELECT 1\n\\restrict abc\n;\n", 2, "\\restrict"),  # inside a statement
    ("\\restrict abc def\nSELECT 1;\n", 1, "\\restrict"),  # not pg_dump's line
])
def test_other_meta_commands_are_still_refused(text, line, command, kgmigrate, migrations, db):
    bad = migrations.add("001_meta.sql", text)
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:{line}: error: psql meta-command {command} is not supported" in result.output
    assert tracked(db) == []


def test_restrict_lines_in_a_migration_are_skipped(kgmigrate, migrations, db):
    migrations.add("001_dumped.sql", "\\restrict 9xYz\nCREATE TABLE kept (t text);\n"
                                     "INSERT INTO kept VALUES ($$\n\\restrict 9xYz\n$$);\n"
                                     "\\unrestrict 9xYz\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert db.execute("SELECT t FROM kept").fetchone() == ("\n\\restrict 9xYz\n",)


@pytest.mark.parametrize("header, message", [
    ("-- kgmigrate:squashed-through x\n", ":1: bad directive"),
    ("-- kgmigrate:squashed-through 2\n-- kgmigrate:squashed 001 a short\n", ":2: bad directive"),
    ("-- kgmigrate:squashed-through 1\n-- kgmigrate:squashed 002 b " + "0" * 64 + "\n",
     "above its `-- kgmigrate:squashed-through 1`"),
])
def test_malformed_baseline_header_is_refused_with_its_line(header, message, kgmigrate,
                                                            migrations, db):
    migrations.baseline(header + "CREATE TABLE x (y int);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1 and message in result.output
    assert tracked(db) == []


def test_new_files_are_numbered_above_the_squashed_range(kgmigrate, migrations, scratch, db):
    write_history(migrations.path, 3)
    assert kgmigrate("squash", "--through", "3", "--scratch-url", scratch).exit_code == 0
    for path in migrations.path.glob("*.sql"):
        path.unlink()
    result = kgmigrate("new", "Add notes")
    assert result.exit_code == 0
    assert result.output.strip().endswith("004_add_notes.sql")

    migrations.add("002_other.sql", "CREATE TABLE other (x int);\n")  # numbered by hand, wrongly
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "takes version 002, which 00_baseline.sql holds (002 step_2, squashed)" in result.output
    assert "git mv 002_other.sql 005_other.sql" in result.output
    assert tracked(db) == []


def test_a_requirement_on_a_squashed_version_is_met_by_the_baseline(
        kgmigrate, migrations, scratch, db):
    write_history(migrations.path, 4)
    assert kgmigrate("squash", "--through", "3", "--scratch-url", scratch).exit_code == 0
    for path in sorted(migrations.path.glob("*.sql"))[:3]:
        path.unlink()
    migrations.add("005_after.sql", "-- kgmigrate:requires 002 004\nCREATE TABLE hist.after (x int);\n")
    result = kgmigrate("check")
    assert result.exit_code == 0, result.output
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1, 2, 3, 4, 5]
    graph = kgmigrate("graph")
    assert graph.exit_code == 0, graph.output
    migrations.add("006_bad.sql", "-- kgmigrate:requires 009\nSELECT 1;\n")
    result = kgmigrate("check")
    assert result.exit_code == 1  # a finding
    assert "006_bad.sql" in result.output
