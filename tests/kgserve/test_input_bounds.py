"""Bad or oversized input is refused at the edge, naming input[i], before any model work."""

from __future__ import annotations

import pytest

from tests.support.kgs import ADMIN_TOKEN, MINILM_BODY

SURROGATE = '{"input": ["fine", "a\\ud800b"]}'  # valid JSON, but not text


@pytest.mark.parametrize("batching", [True, False])
@pytest.mark.slow
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


def test_a_text_over_the_character_limit_is_a_400_naming_it(client, minilm, make):
    long = "word " * 20_001  # 100 005 characters: over the default of 100 000
    resp = client.post("/v1/embeddings", json={"input": ["short", long]})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["param"] == "input" and "input[1]" in error["message"]
    assert "100005" in error["message"] and "KG_MAX_INPUT_CHARS" in error["message"]
    # The limit is a setting; at the limit a text is served.
    small = make(MAX_INPUT_CHARS=1000).test_client()
    assert small.post("/v1/embeddings", json={"input": "x" * 1001}).status_code == 400
    assert small.post("/v1/embeddings", json={"input": "x" * 1000}).status_code == 200


def test_a_long_text_is_cut_to_the_models_reach_before_tokenizing(app, client, minilm,
                                                                  monkeypatch):
    """A 90 000-character text is tokenized no further than the model can read, and gets the vector the
    model gives the whole text (sentence-transformers truncates at max_seq_length tokens)."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from kgserve.providers.local import CHARS_PER_TOKEN
    from kgserve.runtime import runtime
    from tests.support.tiny_models import minilm_dir

    provider = runtime(app).manager.current()
    tokenizer_class = type(provider.provider._tokenizer)
    seen: list[int] = []
    real_call = tokenizer_class.__call__

    def recording(self, text=None, *args, **kwargs):
        seen.extend(len(t) for t in ([text] if isinstance(text, str) else text or []))
        return real_call(self, text, *args, **kwargs)

    long = "Embeddings map text to points in a vector space. " * 1_800  # 90 000 characters
    monkeypatch.setattr(tokenizer_class, "__call__", recording)
    resp = client.post("/v1/embeddings", json={"input": [long, "a short one"]})
    monkeypatch.undo()
    assert resp.status_code == 200, resp.get_json()
    assert seen and max(seen) <= provider.provider.max_seq_length * CHARS_PER_TOKEN
    direct = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    want = direct.encode([long], normalize_embeddings=True)[0]
    got = np.asarray(resp.get_json()["data"][0]["embedding"])
    assert float(got @ want) >= 0.9999
