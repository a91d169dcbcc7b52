"""deploy/nginx.conf with Debian's nginx in front of real gunicorn: slow clients starve nobody."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.support.kgs import MINILM_BODY, REPO, call, free_port
from tests.support.waiting import stop_process, wait_for

pytestmark = [pytest.mark.nginx, pytest.mark.gunicorn]

SLOW_CLIENTS = 200  # the count: far more than gunicorn's 2 x 32 threads
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def nginx(gunicorn_server, tmp_path):
    """deploy/nginx.conf, changed only in ports and paths, in front of `gunicorn_server`."""
    assert shutil.which(NGINX), "nginx is missing: `make install` installs Debian's nginx-light"
    upstream = urlsplit(gunicorn_server.base).netloc
    port = free_port()
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    for old, new in [("server 127.0.0.1:8000;", f"server {upstream};"),
                     ("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};"),
                     ("/run/nginx-kgserve.pid", str(tmp_path / "nginx.pid")),
                     ("/var/log/nginx/kgserve.error.log", str(tmp_path / "error.log")),
                     ("/var/log/nginx/kgserve.access.log", str(tmp_path / "access.log"))]:
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "nginx.conf").write_text(conf)
    (tmp_path / "logs").mkdir()
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, proc.stdout.read()
        try:
            return call(base, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, "nginx to answer", 60, interval=0.2)
    yield base
    stop_process(proc)


def test_slow_clients_do_not_starve_the_others(gunicorn_server, nginx):
    code, body = call(nginx, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    gunicorn_server.converge(body["config_id"])
    parts = urlsplit(nginx)
    slow = []
    try:
        for _ in range(SLOW_CLIENTS):  # each sends half a request head, then nothing
            sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
            slow.append(sock)
        time.sleep(1)  # they are all waiting now
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda i: call(nginx, "POST", "/v1/embeddings", {"input": f"text {i}"}),
                range(40)))
        assert [code for code, _ in answers] == [200] * 40
        assert all(len(out["data"][0]["embedding"]) == 384 for _, out in answers)
    finally:
        for sock in slow:
            sock.close()


def test_nginx_refusals_are_json(nginx):
    code, body = call(nginx, "POST", "/v1/embeddings", {"input": "x" * (9 * 2**20)})
    assert code == 413 and body["error"] == "request_too_large"
