"""Every embeddings answer names the config it came from; a client may require one (409)."""

from __future__ import annotations

from tests.support.kgs import MINILM_BODY

EMBED = "/v1/embeddings"


def test_answers_carry_their_config_and_a_client_can_require_it(client, admin, minilm):
    first = minilm["config_id"]
    resp = client.post(EMBED, json={"input": "vectors"})
    assert resp.status_code == 200
    assert resp.headers["x-kgserve-config-id"] == str(first)
    assert resp.headers["x-kgserve-dimensions"] == "384"
    required = client.post(EMBED, json={"input": "vectors"},
                           headers={"x-kgserve-config-id": str(first)})
    assert required.status_code == 200
    # The same model at 256 dimensions: same `model` name, another vector space.
    change = client.post("/admin/embedding/config", headers=admin,
                         json={**MINILM_BODY, "embedding_dimensions": 256})
    assert change.status_code == 200, change.get_json()
    second = change.get_json()["config_id"]
    resp = client.post(EMBED, json={"input": "vectors"})
    assert resp.get_json()["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert resp.headers["x-kgserve-config-id"] == str(second)
    assert resp.headers["x-kgserve-dimensions"] == "256"
    assert len(resp.get_json()["data"][0]["embedding"]) == 256
    # A client still on the old space is told, not served vectors it would mix up.
    stale = client.post(EMBED, json={"input": "vectors"},
                        headers={"x-kgserve-config-id": str(first)})
    assert stale.status_code == 409
    error = stale.get_json()["error"]
    assert error["code"] == "config_mismatch" and error["param"] == "x-kgserve-config-id"
    assert str(second) in error["message"]
    assert stale.headers["x-kgserve-config-id"] == str(second)


def test_a_required_config_id_that_is_not_an_id_is_a_400(client, minilm):
    resp = client.post(EMBED, json={"input": "vectors"}, headers={"x-kgserve-config-id": "abc"})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == "x-kgserve-config-id"
