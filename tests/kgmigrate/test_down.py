"""`kgmigrate down`: what it reverses, how it refuses, how it fails, and what status says."""

from __future__ import annotations

import json

import pytest

from kgmigrate.apply.locks.runner import LOCK_KEY
from kgmigrate.files.migrations import file_checksum
from tests.support.kgm import NO_TX, AnswerAfter, table_exists, tracked


def _downs(db) -> dict[int, str | None]:
    return dict(db.execute("SELECT version, down_checksum FROM public.schema_migrations"))


@pytest.fixture
def four(kgmigrate, migrations, db):
    """Four applied migrations, each creating a table, each with a down file dropping it."""
    for v in range(1, 5):
        migrations.add(f"00{v}_t{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n")
        migrations.add(f"00{v}_t{v}.down.sql", f"DROP TABLE kgt_{v};\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    return migrations


def test_up_records_the_down_checksum_beside_the_up_checksum(four, db):
    assert _downs(db) == {v: file_checksum(four.path / f"00{v}_t{v}.down.sql")
                          for v in range(1, 5)}


def test_down_reverses_the_newest_then_steps_then_to(kgmigrate, four, db):
    result = kgmigrate("down", "-y")
    assert result.exit_code == 0, result.output
    assert "✓ Reversed 004 - t4" in result.output
    assert "Reversed: 1 migration(s). Schema version: 003" in result.output
    assert tracked(db) == [1, 2, 3] and not table_exists(db, "kgt_4")

    result = kgmigrate("down", "--steps", "2", "-y")
    assert result.exit_code == 0, result.output
    assert result.output.index("Reversed 003") < result.output.index("Reversed 002")
    assert tracked(db) == [1]

    assert kgmigrate("up", "-y").exit_code == 0
    result = kgmigrate("down", "--to", "0", "-y")  # 001 has a down file here: all go
    assert result.exit_code == 0, result.output
    assert tracked(db) == [] and not table_exists(db, "kgt_1")
    assert "Nothing to reverse" in kgmigrate("down", "-y").output


def test_following_up_reapplies_the_reversed_files(kgmigrate, four, db):
    assert kgmigrate("down", "--to", "2", "-y").exit_code == 0
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Applied: 2 migration(s). Schema version: 004" in result.output
    assert tracked(db) == [1, 2, 3, 4] and table_exists(db, "kgt_4")


def test_a_version_without_down_file_refuses_the_whole_plan(kgmigrate, four, db):
    (four.path / "003_t3.down.sql").unlink()
    (four.path / "002_t2.down.sql").unlink()
    result = kgmigrate("down", "--to", "1", "-y")
    assert result.exit_code == 1
    assert ("cannot reverse: no down file for 003_t3.sql (add 003_t3.down.sql), 002_t2.sql "
            "(add 002_t2.down.sql). Nothing was reversed.") in result.output
    assert tracked(db) == [1, 2, 3, 4] and table_exists(db, "kgt_4")
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert [a["reversible"] for a in status["applied"]] == [True, False, False, True]


def test_down_runs_what_it_showed_when_files_change_at_the_prompt(kgmigrate, four, db):
    shown = four.path / "004_t4.down.sql"

    def edit() -> None:
        shown.write_text("CREATE TABLE kgt_edited (x INTEGER);\nDROP TABLE kgt_4;\n")

    result = kgmigrate("down", input=AnswerAfter(b"y\n", edit))
    assert result.exit_code == 0, result.output
    assert "Reverse 1 migration(s)?" in result.output
    assert tracked(db) == [1, 2, 3] and not table_exists(db, "kgt_4")
    assert not table_exists(db, "kgt_edited")


def test_prompt_no_reverses_nothing_and_dry_run_writes_nothing(kgmigrate, four, db):
    result = kgmigrate("down", "--steps", "2", input="n\n")
    assert "Reverse 2 migration(s)? [y/N]" in result.output
    assert "Nothing reversed." in result.output
    result = kgmigrate("down", "--steps", "2", input="")  # EOF: the default, no
    assert "Nothing reversed." in result.output
    db.execute("UPDATE public.schema_migrations SET down_checksum = NULL")
    result = kgmigrate("down", "--to", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "→ Reverse 004 - t4 (004_t4.down.sql)" in result.output
    assert "Dry run: nothing was reversed. Current schema version: 004" in result.output
    assert tracked(db) == [1, 2, 3, 4]
    assert set(_downs(db).values()) == {None}  # a dry run adopts nothing either


def test_steps_and_to_together_are_a_usage_error(kgmigrate, four):
    result = kgmigrate("down", "--steps", "1", "--to", "2")
    assert result.exit_code == 2
    assert "give --steps or --to, not both" in result.output


def test_edited_down_file_is_drift_status_shows_down_refuses_repair_accepts(kgmigrate, four, db):
    path = four.path / "003_t3.down.sql"
    path.write_text("DROP TABLE IF EXISTS kgt_3;\n")
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert status["down_drifted"] == [3] and status["drifted"] == []
    assert "Drifted down files: 003" in kgmigrate("status").output
    result = kgmigrate("down", "--to", "2", "-y")
    assert result.exit_code == 1
    assert "changed since they were applied: 003_t3.down.sql" in result.output
    assert "kgmigrate repair 3" in result.output
    assert tracked(db) == [1, 2, 3, 4]  # 004 was not reversed either: the plan is checked whole
    up = kgmigrate("up", "-y")  # up itself does not run down files: it only warns
    assert up.exit_code == 0 and "down file(s) changed" in up.output
    assert kgmigrate("repair", "3").exit_code == 0
    assert _downs(db)[3] == file_checksum(path)
    assert kgmigrate("down", "--to", "2", "-y").exit_code == 0
    assert tracked(db) == [1, 2]


@pytest.mark.parametrize("command", [("up", "-y"), ("down", "-y"), ("repair",)])
def test_down_file_added_later_is_adopted(kgmigrate, migrations, db, command):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\n")
    assert kgmigrate("up", "-y").exit_code == 0
    assert _downs(db) == {1: None, 2: None}
    status = json.loads(kgmigrate("status", "--json").stdout)
    assert [a["reversible"] for a in status["applied"]] == [False, False]
    down = migrations.add("002_b.down.sql", "DROP TABLE kgt_b;\n")
    assert json.loads(kgmigrate("status", "--json").stdout)["down_drifted"] == []
    result = kgmigrate(*command)
    assert result.exit_code == 0, result.output
    if command[0] == "down":
        assert tracked(db) == [1]
    else:
        assert _downs(db) == {1: None, 2: file_checksum(down)}


def test_syntax_error_in_any_down_file_stops_before_anything_runs(kgmigrate, four, db):
    four.add("003_t3.down.sql", "-- reverse\n\nDROP TABLE kgt_3;\nDROP TABLEE kgt_3;\n")
    db.execute("UPDATE public.schema_migrations SET down_checksum = NULL")
    result = kgmigrate("down", "--to", "1", "-y")
    assert result.exit_code == 1
    assert "003_t3.down.sql:4" in result.output
    assert tracked(db) == [1, 2, 3, 4] and table_exists(db, "kgt_4")


def test_runtime_error_rolls_back_that_file_and_says_what_is_applied(kgmigrate, four, db):
    four.add("003_t3.down.sql", "DROP TABLE kgt_3;\n\nSELECT 1 / 0;\n")
    db.execute("UPDATE public.schema_migrations SET down_checksum = NULL")
    result = kgmigrate("down", "--to", "1", "-y")
    assert result.exit_code == 1
    assert "003_t3.down.sql:3" in result.output
    assert "22012" in result.output  # SQLSTATE division_by_zero
    assert "Reversal of migration 003 (t3) was rolled back" in result.output
    assert "Now applied: 001–003 (3 versions)." in result.output
    assert "Traceback" not in result.output
    assert tracked(db) == [1, 2, 3]  # 004 stays reversed
    assert table_exists(db, "kgt_3") and not table_exists(db, "kgt_4")


def test_down_of_a_no_transaction_file(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")
    migrations.add("002_ix.sql", NO_TX + "CREATE INDEX CONCURRENTLY kgt_ix ON kgt_t (x);\n")
    migrations.add("002_ix.down.sql", NO_TX + "DROP INDEX CONCURRENTLY IF EXISTS kgt_ix;\n")
    assert kgmigrate("up", "-y").exit_code == 0
    result = kgmigrate("down", "--dry-run")
    assert "→ Reverse 002 - ix (002_ix.down.sql)  [no-transaction]" in result.output
    result = kgmigrate("down", "-y")
    assert result.exit_code == 0, result.output
    assert tracked(db) == [1] and not table_exists(db, "kgt_ix")


def test_no_transaction_down_failing_half_way_stays_recorded(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\nCREATE TABLE kgt_u (x INT);\n")
    migrations.add("001_t.down.sql", NO_TX + "DROP TABLE kgt_u;\nSELECT 1 / 0;\n")
    assert kgmigrate("up", "-y").exit_code == 0
    result = kgmigrate("down", "-y")
    assert result.exit_code == 1
    assert "statements 1-1 of 2 already ran and stay applied; it stays recorded as applied" \
        in result.output
    assert "Now applied: 001." in result.output
    assert tracked(db) == [1] and not table_exists(db, "kgt_u")


def test_down_takes_the_runner_lock(kgmigrate, four, db):
    db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    result = kgmigrate("down", "-y", "--lock-timeout", "0.3")
    assert result.exit_code == 1
    assert f"waiting for the migration lock, held by pid {db.info.backend_pid}" in result.output
    assert tracked(db) == [1, 2, 3, 4]
    db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def test_down_bounds_its_wait_for_table_locks(kgmigrate, four, db, db_url):
    import psycopg

    with psycopg.connect(db_url) as holder:  # an open transaction reading kgt_4
        holder.execute("SELECT * FROM kgt_4")
        result = kgmigrate("down", "-y", "--ddl-lock-timeout", "0.2", "--retries", "0")
        holder.rollback()
    assert result.exit_code == 1
    assert "55P03" in result.output  # lock_not_available
    assert "004_t4.down.sql:1" in result.output
    assert tracked(db) == [1, 2, 3, 4] and table_exists(db, "kgt_4")


def test_lint_runs_on_the_down_files(kgmigrate, four):
    result = kgmigrate("down", "--dry-run")
    assert "004_t4.down.sql:1:1: ban-drop-table" in result.output
    result = kgmigrate("down", "-y", "--lint", "error")
    assert result.exit_code == 1
    assert "in down files; nothing was reversed" in result.output


def test_lint_without_paths_lints_down_files_too(kgmigrate, four):
    result = kgmigrate("lint")
    assert result.exit_code == 1  # dropping a table is an error finding
    assert "004_t4.down.sql:1:1: ban-drop-table" in result.output
    assert "4 errors (ban-drop-table)" in result.output and "of 8 files" in result.output


def test_snapshot_before_down_as_before_up(kgmigrate, four, tmp_path, db):
    result = kgmigrate("down", "-y", "--snapshot")
    assert result.exit_code == 0, result.output
    assert "Snapshot: " in result.output
    assert result.output.index("Snapshot: ") < result.output.index("Reversed 004")
    assert len(list((tmp_path / "backups").glob("snapshot_*.dump"))) == 1
    db.execute("INSERT INTO kgt_1 VALUES (1)")  # data: an interactive run asks first
    result = kgmigrate("down", input="n\nn\n")
    assert "Create snapshot before migrating? [Y/n]" in result.output
    assert "Nothing reversed." in result.output
