"""Two replicas (two gunicorn masters, one database, one model cache) behind deploy/nginx.conf.

Rolling restarts and a replica killed with SIGKILL under 16 clients lose no request; a config
change made through either replica reaches the other; both share one ONNX export of MiniLM.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.support.gunicorn import BOUND, start_gunicorn
from tests.support.kgs import ADMIN_TOKEN, MINILM, ONNX_BODY, call, migrate
from tests.support.load import Load, p99
from tests.support.nginx import running_nginx
from tests.support.pg import create_database, destroy_cluster, make_cluster
from tests.support.waiting import stop_process, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.gunicorn, pytest.mark.nginx, pytest.mark.export]

CLIENTS = 16
RESTART_LOAD_SECONDS = 60  # the load runs this long from the start of the rolling restart
STEADY_SECONDS = 10


class Replica:
    """One gunicorn master (one worker) on a port of its own; restartable on that port."""

    def __init__(self, name: str, url: str, folder: Path, env: dict[str, str]) -> None:
        self.name, self.url, self.folder, self.env = name, url, folder, env
        self.port: int | None = None
        self.logs: list[Path] = []
        self.proc = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.folder / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        (self.folder / f"{self.name}-metrics").mkdir(exist_ok=True)
        base, self.proc = start_gunicorn(
            self.url, log, workers=1, port=self.port, new_session=True,
            PROMETHEUS_MULTIPROC_DIR=str(self.folder / f"{self.name}-metrics"), **self.env)
        self.port = urlsplit(base).port

    def log_text(self) -> str:
        return "".join(log.read_text() for log in self.logs)

    def ready(self) -> bool:
        """Say whether /readyz answers 200 (fail if the server exited)."""
        assert self.proc.poll() is None, self.log_text()[-3000:]
        try:
            return call(self.base, "GET", "/readyz")[0] == 200
        except OSError:
            return False

    def taking_requests(self) -> bool:
        """Say whether its current gunicorn has served an embedding request (its access log)."""
        return "POST /v1/embeddings" in self.logs[-1].read_text()

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; wait for the exit."""
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL the master and its worker at once, as a crash or the OOM killer would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def served_config(self) -> int:
        """The config id in the x-kgserve-config-id header of an embedding answered here."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/v1/embeddings", json.dumps({"input": "which config?"}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            return int(resp.getheader("x-kgserve-config-id"))
        finally:
            conn.close()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Two replicas started together on a database whose active config is MiniLM on onnx, with
    one empty model cache for both; nginx in front. Yields (replicas, nginx base URL)."""
    folder = tmp_path_factory.mktemp("replicas")
    cluster = make_cluster("kgrep-")
    url = create_database(cluster)
    migrate(url, folder / "backups")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE kg_api.embedding_config SET active = FALSE")
        conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                     "embedding_dimensions, precision, backend, device, active) VALUES "
                     "('local', %s, 384, 'float32', 'onnx', 'cpu', TRUE)", (MINILM,))
    env = {"KG_MODEL_CACHE": str(folder / "model-cache"), "KG_POLL_INTERVAL": "3"}
    pair = [Replica(name, url, folder, env) for name in ("a", "b")]
    try:
        for replica in pair:
            wait_for(replica.ready, lambda r=replica: f"replica {r.name} to load\n"
                     f"{r.log_text()[-3000:]}", 600, interval=0.5)
        with running_nginx([f"127.0.0.1:{r.port}" for r in pair], folder) as base:
            yield pair, base
    finally:
        for replica in pair:
            if replica.proc.poll() is None:
                replica.stop()
        destroy_cluster(cluster)
        for replica in pair:
            text = replica.log_text()
            assert "Traceback" not in text, text[-5000:]
            assert ADMIN_TOKEN not in text


def test_both_replicas_share_one_export(replicas):
    pair, _ = replicas
    logs = [r.log_text() for r in pair]
    exports = [len(re.findall(r"exporting \S+ to onnx float32", text)) for text in logs]
    assert sorted(exports) == [0, 1], exports  # one replica built it ...
    waiter = logs[exports.index(0)]
    assert "waiting for another process exporting" in waiter, waiter[-3000:]  # ... one waited
    cache = Path(pair[0].env["KG_MODEL_CACHE"])
    entries = [p.name for p in next(cache.iterdir()).iterdir() if p.is_dir()]
    assert [name.split("-")[0] for name in entries] == ["onnx"], entries  # no leftovers
    for replica in pair:
        code, body = call(replica.base, "GET", "/admin/embedding/config", admin=True)
        assert code == 200 and body["model_status"]["backend"] == "onnx", body


@pytest.mark.parametrize("through", [0, 1])
def test_a_config_change_through_either_replica_reaches_both(replicas, through):
    pair, _ = replicas
    other = pair[1 - through]
    change = {**ONNX_BODY, "max_seq_length": 200 + through}
    code, body = call(pair[through].base, "POST", "/admin/embedding/config", change, admin=True)
    assert code == 200, body
    new_id = body["config_id"]
    assert pair[through].served_config() == new_id
    changed = time.monotonic()
    # Bounded generously; the documented time is KG_POLL_INTERVAL plus the model's load.
    wait_for(lambda: other.served_config() == new_id,
             lambda: f"replica {other.name} to serve config {new_id}", BOUND, interval=0.1)
    print(f"replica {other.name} served config {new_id} {time.monotonic() - changed:.2f} s "
          f"after the change through replica {pair[through].name}")


def test_a_rolling_restart_under_load_loses_no_request(replicas):
    pair, nginx = replicas
    with Load(nginx, CLIENTS) as load:
        started = time.monotonic()
        time.sleep(STEADY_SECONDS)
        restart = time.monotonic()
        for replica in pair:  # one at a time: the other serves meanwhile
            replica.stop()
            replica.start()
            wait_for(replica.ready, lambda r=replica: f"replica {r.name} to come back\n"
                     f"{r.log_text()[-3000:]}", BOUND, interval=0.2)
            # nginx gives a replica that failed a request another one after fail_timeout
            wait_for(replica.taking_requests, f"nginx to send replica {replica.name} requests",
                     BOUND, interval=0.2)
        restarted = time.monotonic()
        time.sleep(max(0.0, restart + RESTART_LOAD_SECONDS - restarted))
    steady, during = load.window(started, restart), load.window(restart, restarted)
    assert load.failures() == []
    assert steady and during
    print(f"rolling restart: {len(load.outcomes)} requests, {len(load.failures())} failed; "
          f"steady p99 {p99(steady) * 1000:.0f} ms ({len(steady)} requests), during the "
          f"restarts ({restarted - restart:.1f} s) p99 {p99(during) * 1000:.0f} ms "
          f"({len(during)} requests)")


def test_a_replica_killed_under_load_loses_no_request(replicas):
    pair, nginx = replicas
    victim = pair[0]
    with Load(nginx, CLIENTS) as load:
        wait_for(lambda: load.count("ok") >= 50, "the load to be served")
        killed = time.monotonic()
        victim.kill()
        wait_for(lambda: load.count("ok", since=killed) >= 100, "requests after the kill")
    assert load.failures() == []
    print(f"kill -9: {len(load.outcomes)} requests, 0 failed; p99 after the kill "
          f"{p99(load.window(killed, time.monotonic())) * 1000:.0f} ms")
    victim.start()
    wait_for(victim.ready, "the killed replica to come back", BOUND, interval=0.2)
