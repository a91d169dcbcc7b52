"""What the server says about itself is true: /readyz's scope, /metrics' content type."""

from __future__ import annotations

import os


def test_readyz_says_it_reports_the_worker_that_answered(client, minilm):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["scope"] == "worker" and body["pid"] == os.getpid()


def test_metrics_content_type_names_its_charset_once(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200
    content_type = resp.headers["Content-Type"]
    assert content_type.startswith("text/plain; version=")
    assert content_type.count("charset") == 1
