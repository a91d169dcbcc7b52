"""`down` among other runners: serialised with `up` by the runner lock, each step once; a runner
killed with SIGKILL mid-reversal leaves every file fully reversed and unrecorded, or untouched."""

from __future__ import annotations

import signal

import pytest

from tests.support.kgm import (
    kgmigrate_proc,
    run_kgmigrate,
    runner_sleeping,
    table_exists,
    tracked,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

RUNNERS = 6


def test_six_down_and_up_runners_serialise_each_step_once(migrations, db_url, db):
    # Every file logs itself in its own transaction: a file run twice, or a reversal of a
    # version not applied, shows in the log.
    db.execute("CREATE TABLE kgt_log (seq BIGSERIAL PRIMARY KEY, what TEXT, version INTEGER)")
    for v in range(1, 6):
        nap = "SELECT pg_sleep(0.1);\n" if v == 3 else ""
        migrations.add(f"00{v}_t{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n{nap}"
                                          f"INSERT INTO kgt_log (what, version) VALUES ('up', {v});\n")
        migrations.add(f"00{v}_t{v}.down.sql", f"DROP TABLE kgt_{v};\n{nap}"
                                               f"INSERT INTO kgt_log (what, version) "
                                               f"VALUES ('down', {v});\n")
    assert run_kgmigrate(db_url, migrations.path, "up", "-y").returncode == 0
    procs = [kgmigrate_proc(db_url, migrations.path,
                            *(("down", "--to", "0", "-y") if i % 2 == 0 else ("up", "-y")))
             for i in range(RUNNERS)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert "Traceback" not in err, err
        # A down that planned before an up re-applied files refuses rather than reverse from
        # the middle; everything else succeeds.
        assert proc.returncode == 0 or (
            proc.returncode == 1 and "the database changed since the plan" in err), out + err

    state: dict[int, str] = {}
    for what, version in db.execute("SELECT what, version FROM kgt_log ORDER BY seq"):
        assert state.get(version, "down") != what, f"{what} {version} twice in a row"
        state[version] = what
    applied = sorted(v for v, what in state.items() if what == "up")
    assert tracked(db) == applied
    for v in range(1, 6):
        assert table_exists(db, f"kgt_{v}") == (v in applied)
    reversals = sum(out.count("✓ Reversed 00") for out, _ in outputs)
    assert reversals == db.execute("SELECT count(*) FROM kgt_log WHERE what = 'down'").fetchone()[0]
    assert reversals >= 5  # the first down to get the lock reversed everything


def test_kill_9_mid_down_leaves_each_file_reversed_or_untouched(migrations, db_url, db):
    db.execute("CREATE TABLE kgt_control (sleep_s FLOAT NOT NULL)")
    db.execute("INSERT INTO kgt_control VALUES (600)")
    for v in (1, 2, 3):
        migrations.add(f"00{v}_t{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n")
    migrations.add("002_t2.down.sql", "DROP TABLE kgt_2;\n"
                                      "SELECT pg_sleep((SELECT sleep_s FROM kgt_control));\n")
    migrations.add("003_t3.down.sql", "DROP TABLE kgt_3;\n")
    assert run_kgmigrate(db_url, migrations.path, "up", "-y").returncode == 0
    proc = kgmigrate_proc(db_url, migrations.path, "down", "--to", "1", "-y")
    try:
        wait_for(lambda: runner_sleeping(db), "the runner to reach pg_sleep", 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # 003 was reversed and unrecorded before the kill; 002 is still applied and recorded.
    assert tracked(db) == [1, 2]
    assert table_exists(db, "kgt_2") and not table_exists(db, "kgt_3")

    db.execute("UPDATE kgt_control SET sleep_s = 0")
    result = run_kgmigrate(db_url, migrations.path, "down", "--to", "1", "-y",
                           "--lock-timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert tracked(db) == [1] and not table_exists(db, "kgt_2")
