"""SIGTERM to real gunicorn under load: every request it accepted is answered; readyz says 503."""

from __future__ import annotations

import http.client
import json
import signal
import time
from urllib.parse import urlsplit

import pytest

from tests.support.gunicorn import BOUND
from tests.support.kgs import MINILM_BODY, call
from tests.support.load import Load
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]


def readyz_until_stopping(conn: http.client.HTTPConnection) -> dict:
    """Ask /readyz on one kept-alive connection until it answers 503; return that body."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            body = json.loads(resp.read())
        except (OSError, http.client.HTTPException) as exc:
            pytest.fail(f"the worker closed its kept-alive connection without a 503: {exc!r}")
        if resp.status == 503:
            return body
        assert resp.status == 200, body
        time.sleep(0.05)
    pytest.fail("readyz never answered 503")


def test_sigterm_under_load_answers_every_accepted_request(gunicorn_server):
    server = gunicorn_server
    code, body = call(server.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    server.converge(body["config_id"])
    parts = urlsplit(server.base)
    probe = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    with Load(server.base, clients=16) as load:
        wait_for(lambda: load.count("ok") >= 40, "the load to be served")
        probe.request("GET", "/readyz")  # a connection the worker keeps alive, like a balancer's
        resp = probe.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        stopping = readyz_until_stopping(probe)
        server.proc.wait(BOUND)
        # Once the server is gone every client is refused: nothing more can be accepted.
        after_exit = time.monotonic()
        wait_for(lambda: load.count("refused", since=after_exit) >= 16, "clients to be refused")
    probe.close()

    assert load.failures() == []
    assert stopping["ready"] is False and stopping["checks"]["process"] == "stopping"
    assert stopping["reasons"][0].startswith("stopping")
    # Requests in flight when the signal came were finished, not dropped.
    assert any(o.result == "ok" and o.started < signalled < o.ended for o in load.outcomes)
    print(f"{load.count('ok')} requests answered, {load.count('refused')} refused after the "
          f"stop, 0 failed")
