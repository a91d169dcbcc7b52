"""Ctrl-C (SIGINT) and SIGTERM in the middle of a file: a clear line, 130/143, the file rolled back
and the migration lock released."""

from __future__ import annotations

import signal

import psycopg
import pytest

from tests.support.kgm import kgmigrate_running, runner_sleeping, table_exists, tracked
from tests.support.waiting import wait_for

SLEEPY = "CREATE TABLE half_done (x int);\nSELECT pg_sleep(60);\n"
EXITS = {signal.SIGINT: (130, "Interrupted: "), signal.SIGTERM: (143, "Interrupted by SIGTERM: ")}


def _default_sigint() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored: Python would then
    # never raise KeyboardInterrupt. A terminal's Ctrl-C reaches a process with the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(db: psycopg.Connection, db_url: str, folder, sig: signal.Signals,
               *args: str) -> tuple[int, str]:
    with kgmigrate_running(db_url, folder, *args, preexec_fn=_default_sigint) as proc:
        wait_for(lambda: runner_sleeping(db), "kgmigrate to reach pg_sleep", 60)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _lock_free(db: psycopg.Connection) -> bool:
    return db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                      ).fetchone()[0] == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_interrupted_mid_file_rolls_it_back(sig, migrations, db, db_url):
    migrations.add("001_first.sql", "CREATE TABLE kept (x int);\n")
    sleepy = migrations.add("002_sleepy.sql", SLEEPY)
    code, err = _interrupt(db, db_url, migrations.path, sig, "up", "-y", "--no-snapshot",
                           "--lint", "off")
    want_code, prefix = EXITS[sig]
    assert code == want_code, err
    assert f"{prefix}{sleepy} was rolled back; nothing of it was applied" in err
    assert "Traceback" not in err and "current transaction is aborted" not in err
    assert tracked(db) == [1] and table_exists(db, "kept")
    assert not table_exists(db, "half_done")
    assert _lock_free(db)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_down_interrupted_mid_file_rolls_it_back(sig, migrations, db, db_url, kgmigrate):
    migrations.add("001_first.sql", "CREATE TABLE kept (x int);\n")
    down = migrations.add("001_first.down.sql", "DROP TABLE kept;\nSELECT pg_sleep(60);\n")
    assert kgmigrate("up", "-y", "--no-snapshot", "--lint", "off").exit_code == 0
    code, err = _interrupt(db, db_url, migrations.path, sig, "down", "-y", "--no-snapshot",
                           "--lint", "off")
    want_code, prefix = EXITS[sig]
    assert code == want_code, err
    assert f"{prefix}{down} was rolled back; nothing of it was applied" in err
    assert tracked(db) == [1] and table_exists(db, "kept")
    assert _lock_free(db)
