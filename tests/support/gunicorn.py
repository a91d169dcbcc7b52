"""kgserve under real gunicorn (two workers) on a PostgreSQL cluster of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.kgs import ADMIN_TOKEN, REPO, call, free_port, migrate
from tests.support.pg import create_database, destroy_cluster, make_cluster
from tests.support.waiting import stop_process, wait_for

BOUND = 180  # generous bound on waiting for convergence; not a speed assertion


class GunicornServer:
    """A running `gunicorn -c gunicorn.conf.py -w 2 kgserve:app`, its log and its database."""

    def __init__(self, base: str, proc: subprocess.Popen, log: Path, cluster, url: str):
        self.base, self.proc, self.log, self.cluster, self.url = base, proc, log, cluster, url

    def statuses(self, rounds: int = 16) -> dict[int, dict]:
        """Ask the admin status many times in parallel; return the latest status per worker pid."""
        seen: dict[int, dict] = {}
        with ThreadPoolExecutor(4) as pool:
            for code, body in pool.map(lambda _: call(self.base, "GET",
                                                      "/admin/embedding/config", admin=True),
                                       range(rounds)):
                if code == 200:
                    seen[body["model_status"]["pid"]] = body["model_status"]
        return seen

    def converge(self, config_id: int, workers: int = 2) -> dict[int, dict]:
        """Wait until every worker serves `config_id` (bounded generously)."""
        deadline = time.monotonic() + BOUND
        latest: dict[int, dict] = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            latest.update(self.statuses())
            if len(latest) >= workers and all(s["config_id"] == config_id and
                                              s["state"] == "ready" for s in latest.values()):
                return latest
            time.sleep(0.2)
        pytest.fail(f"workers did not converge on {config_id}: {latest}\n"
                    f"{self.log.read_text()[-3000:]}")

    def healthy(self) -> bool:
        """Say whether the server answers /healthz (fail if it exited)."""
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return call(self.base, "GET", "/healthz")[0] == 200
        except OSError:
            return False


def start_gunicorn(url: str, log: Path, workers: int = 2, port: int | None = None,
                   new_session: bool = False, **env: str) -> tuple[str, subprocess.Popen]:
    """Start `gunicorn -c gunicorn.conf.py -w <workers> kgserve:app` on database `url` (more KG_*
    and other settings in `env`), its output in `log`, on `port` (default: a free one), in a
    process group of its own with `new_session`; return (base URL, process)."""
    port = port or free_port()
    env = {**os.environ, "KG_DATABASE_URL": url, "KG_ADMIN_TOKEN": ADMIN_TOKEN,
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
             "-w", str(workers), "--bind", f"127.0.0.1:{port}", "kgserve:app"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=new_session)
    return f"http://127.0.0.1:{port}", proc


@contextmanager
def running_gunicorn(tmp: Path, openai_stub) -> Iterator[GunicornServer]:
    """Start the server (the OpenAI API served by `openai_stub`); stop it and check its log."""
    cluster = make_cluster("kggu-")
    url = create_database(cluster)
    migrate(url, tmp / "backups")
    log = tmp / "gunicorn.log"
    base, proc = start_gunicorn(url, log, OPENAI_API_KEY=openai_stub.api_key,
                                OPENAI_BASE_URL=openai_stub.base_url, KG_POLL_INTERVAL="2")
    server = GunicornServer(base, proc, log, cluster, url)
    try:
        wait_for(server.healthy, "gunicorn to answer /healthz", BOUND, interval=0.2)
        yield server
    finally:
        stop_process(proc)
        destroy_cluster(cluster)
        text = log.read_text()
        assert "Traceback" not in text, text[-5000:]
        assert ADMIN_TOKEN not in text and openai_stub.api_key not in text
