"""Bad or oversized input is refused at the edge, naming input[i], before any model work."""

from __future__ import annotations

import pytest

from tests.support.kgs import ADMIN_TOKEN, MINILM_BODY

SURROGATE = '{"input": ["fine", "a\\ud800b"]}'  # valid JSON, but not text


@pytest.mark.parametrize("batching", [True, False])
def test_a_lone_surrogate_is_a_400_naming_its_input(make, batching):
    app = make(BATCHING=batching)
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    resp = client.post("/v1/embeddings", data=SURROGATE, content_type="application/json")
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["param"] == "input" and "input[1]" in error["message"]
    assert "surrogate" in error["message"]
    # A properly paired surrogate (an emoji written as \ud83d\ude00) is text, and served.
    ok = client.post("/v1/embeddings", data='{"input": "smile \\ud83d\\ude00"}',
                     content_type="application/json")
    assert ok.status_code == 200
