"""Clients that left: a request past its deadline or whose client hung up is dropped from the
queue before its model call, counted, and a client still there gets 503 + Retry-After."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY

from kgserve.runtime import runtime
from kgserve.serve.deadlines import parse_timeout
from tests.support.gate import Gate
from tests.support.kgs import serve
from tests.support.waiting import wait_for


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("kgserve_requests_dropped_total", {"reason": reason}) or 0.0


@pytest.fixture
def gated(app, minilm):
    """The app's queue with a Gate in front of its model: gate.held(queue) keeps it busy."""
    served = runtime(app).manager.current()
    gate = Gate(served.provider)
    served.queue.provider = gate
    return app, served.queue, gate


def test_a_request_past_its_deadline_gets_503_and_no_model_time(gated, client):
    _, queue, gate = gated
    before = dropped("deadline")
    with gate.held(queue):
        resp = client.post("/v1/embeddings", json={"input": ["too late for me"]},
                           headers={"x-request-timeout": "0.3"})
        assert resp.status_code == 503
        assert int(resp.headers["Retry-After"]) >= 1
        error = resp.get_json()["error"]
        assert error["code"] == "request_timeout" and "0.3 s" in error["message"]
        assert dropped("deadline") == before + 1
    ok = client.post("/v1/embeddings", json={"input": ["in time"]})
    assert ok.status_code == 200
    assert not any("too late for me" in call for call in gate.calls)
    assert any("in time" in call for call in gate.calls)


@pytest.mark.slow
def test_the_server_default_applies_without_the_header(make, admin):
    from tests.support.kgs import MINILM_BODY

    app = make(REQUEST_TIMEOUT=0.3)
    client = app.test_client()
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    served = runtime(app).manager.current()
    gate = Gate(served.provider)
    served.queue.provider = gate
    with gate.held(served.queue):
        resp = client.post("/v1/embeddings", json={"input": ["waits too long"]})
        assert resp.status_code == 503 and "Retry-After" in resp.headers
    assert not any("waits too long" in call for call in gate.calls)


@pytest.mark.slow
def test_a_client_that_hung_up_is_dropped_before_its_model_call(gated):
    app, queue, gate = gated
    before = dropped("client_gone")
    body = json.dumps({"input": ["nobody is waiting for this"]}).encode()
    with serve(app) as base, gate.held(queue):
        url = urlsplit(base)
        conn = socket.create_connection((url.hostname, url.port))
        conn.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        wait_for(lambda: queue.queued >= 1, "the request to queue")
        conn.close()
        wait_for(lambda: dropped("client_gone") == before + 1, "the request to be dropped")
    wait_for(lambda: queue.queued == 0, "the queue to empty")
    assert not any("nobody is waiting for this" in call for call in gate.calls)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "3601"])
@pytest.mark.slow
def test_a_bad_timeout_header_is_a_400(client, minilm, value):
    resp = client.post("/v1/embeddings", json={"input": "x"},
                       headers={"x-request-timeout": value})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == "x-request-timeout"


def test_timeouts_parse():
    assert parse_timeout(None, 60) == 60.0
    assert parse_timeout(" ", 60) == 60.0
    assert parse_timeout("2.5", 60) == 2.5
