"""deploy/nginx.conf with Debian's nginx in front of real gunicorn: slow clients starve nobody."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.support.kgs import MINILM_BODY, call
from tests.support.nginx import CrashingReplica, running_nginx

pytestmark = [pytest.mark.nginx, pytest.mark.gunicorn]

SLOW_CLIENTS = 200  # the count: far more than gunicorn's 2 x 32 threads


@pytest.fixture
def nginx(gunicorn_server, tmp_path):
    """deploy/nginx.conf, changed only in addresses and paths, in front of `gunicorn_server`."""
    with running_nginx([urlsplit(gunicorn_server.base).netloc], tmp_path) as base:
        yield base


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


def test_embeddings_are_retried_on_the_next_replica_admin_posts_never(gunicorn_server, tmp_path):
    """One replica resets every POST it is sent: embedding requests are sent again to the other
    replica and answered; an admin POST is not sent twice (the client hears 503 and decides)."""
    code, body = call(gunicorn_server.base, "POST", "/admin/embedding/config", MINILM_BODY,
                      admin=True)
    assert code == 200, body
    gunicorn_server.converge(body["config_id"])
    live = urlsplit(gunicorn_server.base).netloc
    with CrashingReplica() as crashing, running_nginx([crashing.address, live], tmp_path) as base:
        # nginx's round robin alternates between the two until the crashing one first fails
        answers = [call(base, "POST", "/v1/embeddings", {"input": f"retry {i}"})
                   for i in range(6)]
        assert [code for code, _ in answers] == [200] * 6, answers
        assert "/v1/embeddings" in crashing.posts
    with CrashingReplica() as crashing, running_nginx([crashing.address, live], tmp_path) as base:
        answers = [call(base, "POST", "/admin/embedding/config", {}, admin=True)
                   for _ in range(6)]
        # the live replica refuses the empty body (422); the crashing one is never bypassed
        lost = [body for code, body in answers if code == 503]
        assert lost and all(body["error"] == "upstream_unavailable" for body in lost), answers
        assert len(crashing.posts) == len(lost)
        assert {code for code, _ in answers} <= {422, 503}, answers
