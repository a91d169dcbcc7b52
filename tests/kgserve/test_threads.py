"""num_threads: bounded by the cores here, applied per config, and back to the default after."""

from __future__ import annotations

import os

import pytest

from kgserve.runtime import runtime
from kgserve.threads import cores, default_threads
from tests.support.kgs import MINILM_BODY


def os_threads() -> int:
    """Threads of this process as the OS counts them (torch's OpenMP pool included)."""
    return len(os.listdir("/proc/self/task"))


def served(app):
    return runtime(app).manager.current().provider


def test_num_threads_is_bounded_by_the_cores(app, client, admin, minilm):
    assert client.post("/v1/embeddings", json={"input": "warm"}).status_code == 200
    before = os_threads()
    resp = client.post("/admin/embedding/config", headers=admin,
                       json={**MINILM_BODY, "num_threads": 64})
    assert resp.status_code == 200, resp.get_json()
    assert served(app).threads == cores()
    texts = [f"text number {i} about vectors and tables" for i in range(32)]
    assert client.post("/v1/embeddings", json={"input": texts}).status_code == 200
    # One model's pool of at most `cores` threads and a new batching thread, not 64.
    assert os_threads() <= before + cores() + 2


@pytest.mark.slow
def test_a_config_without_num_threads_gets_the_default_again(make, admin):
    # Without batching, model calls run on the request's thread (here: this one), where torch's
    # thread count set for one config must not become the next config's "default".
    app = make(BATCHING=False)
    client = app.test_client()
    assert client.post("/admin/embedding/config", headers=admin,
                       json=MINILM_BODY).status_code == 200
    resp = client.post("/admin/embedding/config", headers=admin,
                       json={**MINILM_BODY, "num_threads": 1})
    assert resp.status_code == 200
    assert served(app).threads == 1
    assert client.post("/v1/embeddings", json={"input": "one thread"}).status_code == 200
    resp = client.post("/admin/embedding/config", headers=admin, json=MINILM_BODY)
    assert resp.status_code == 200
    assert served(app).threads == default_threads()
