"""gunicorn.conf.py: settings only; reading it builds nothing; its hooks do their work in the
right process (each worker's share of the cores, the metrics folder's life)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gunicorn import start_gunicorn
from tests.support.kgs import REPO
from tests.support.waiting import stop_process, wait_for

_READ_CONFIG = """
import runpy, sys
settings = runpy.run_path("gunicorn.conf.py")
from gunicorn.util import load_class
load_class(settings["worker_class"])  # the master loads it too while it reads its config
heavy = {"torch", "prometheus_client", "sentence_transformers", "openai", "psycopg"}
assert not heavy & set(sys.modules), heavy & set(sys.modules)
import kgserve
assert "app" not in vars(kgserve), "reading the config built the app"
print(settings["workers"])
"""


def read_config(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _READ_CONFIG], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **env})


def test_reading_the_config_builds_no_app_and_imports_nothing_heavy():
    out = read_config(KG_WORKERS="3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    assert len((REPO / "gunicorn.conf.py").read_text().splitlines()) <= 80


def test_a_bad_kg_workers_is_refused_saying_so():
    out = read_config(KG_WORKERS="two")
    assert out.returncode != 0
    assert "KG_WORKERS must be a whole number of workers, at least 1, not 'two'" in out.stderr


@pytest.mark.parametrize("variable, value, message", [
    ("KG_REQUEST_TIMEOUT", "abc", "more than 0 and at most 3600, not 'abc'"),
    ("KG_REQUEST_TIMEOUT", "0", "more than 0 and at most 3600, not 0"),
    ("KG_REQUEST_TIMEOUT", "7200", "more than 0 and at most 3600, not 7200"),
    ("KG_CACHE_MB", "-1", "KG_CACHE_MB must be a number of megabytes, at least 0, not -1"),
])
def test_a_bad_setting_stops_gunicorn_before_any_worker_naming_it(variable, value, message):
    gunicorn = Path(sys.executable).parent / "gunicorn"
    out = subprocess.run([str(gunicorn), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
                          "kgserve:app"], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False, env={**os.environ, variable: value})
    assert out.returncode != 0
    assert f"{variable} must be a number" in out.stderr and message in out.stderr, out.stderr
    assert "Booting worker" not in out.stderr


def test_a_bad_setting_stops_the_app_factory_naming_it(monkeypatch):
    from kgserve import create_app
    from kgserve.settings import SettingsError

    monkeypatch.setenv("KG_REQUEST_TIMEOUT", "soon")
    with pytest.raises(SettingsError, match="KG_REQUEST_TIMEOUT must be a number of seconds"):
        create_app({"TESTING": True})
    monkeypatch.setenv("KG_REQUEST_TIMEOUT", "2.5")
    assert create_app({"TESTING": True}).config["REQUEST_TIMEOUT"] == 2.5


def test_max_content_length_null_still_means_no_limit(monkeypatch):
    from kgserve import create_app

    monkeypatch.setenv("KG_MAX_CONTENT_LENGTH", "null")
    assert create_app({"TESTING": True}).config["MAX_CONTENT_LENGTH"] is None


def worker_lines(log) -> list[tuple[int, int, int]]:
    """(model threads, cores, workers) of each worker's start line in the server's log."""
    return [tuple(map(int, m)) for m in re.findall(
        r"worker \d+: (\d+) model threads \(cores (\d+), workers (\d+)\)", log.read_text())]


@pytest.mark.parametrize("workers", [1, 3])
def test_dash_w_decides_each_workers_model_threads(kg_url, openai_stub, tmp_path, monkeypatch,
                                                   workers):
    """`-w` on the command line, not KG_WORKERS (2 here), decides the cores each worker's model
    gets; the server makes its metrics folder (in TMPDIR) and removes it on exit."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)  # the server decides them itself
    log = tmp_path / "gunicorn.log"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    _, proc = start_gunicorn(kg_url, log, workers=workers, KG_WORKERS="2", TMPDIR=str(scratch),
                             OPENAI_API_KEY=openai_stub.api_key,
                             OPENAI_BASE_URL=openai_stub.base_url)
    try:
        lines = wait_for(lambda: len(worker_lines(log)) >= workers and worker_lines(log),
                         lambda: f"{workers} workers to start\n{log.read_text()[-3000:]}")
        assert [p.name.startswith("kgserve-metrics-") for p in scratch.iterdir()] == [True]
    finally:
        stop_process(proc)
    cores = len(os.sched_getaffinity(0))
    assert set(lines) == {(max(1, cores // workers), cores, workers)}, log.read_text()[-3000:]
    assert list(scratch.iterdir()) == [], "the metrics folder outlived the server"
    assert "Traceback" not in log.read_text()
