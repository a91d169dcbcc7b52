"""Compact encodings (int8, uint8, binary, ubinary): decoded bytes equal what
sentence_transformers.quantize_embeddings gives for the same float vectors (real MiniLM)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from sentence_transformers.util.quantization import quantize_embeddings

from kgserve.providers.export.probes import calibration_texts
from tests.support.kgs import ADMIN_TOKEN, MINILM, MINILM_BODY, serve

TEXTS = ["The quick brown fox jumps over the lazy dog.", "PostgreSQL LISTEN/NOTIFY",
         "Embeddings map text to vectors.", "hello", "Ein kurzer deutscher Satz."]
CALIBRATION: dict[int | None, np.ndarray] = {}  # the calibration set's float vectors by size
DTYPES = {"int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}


@pytest.fixture(scope="module")
def served(pg_cluster, tmp_path_factory):
    from kgserve import shutdown
    from tests.support.kgs import make_app, migrate
    from tests.support.pg import create_database, drop_database

    db_url_module = create_database(pg_cluster)
    migrate(db_url_module, tmp_path_factory.mktemp("backups"))

    # One model call per request: the float vectors of a request are exactly the ones the
    # server quantizes, and the calibration set sent as one request is embedded as calibrated.
    app = make_app(db_url_module, BATCHING=False)
    client = app.test_client()
    resp = client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 200, resp.get_json()
    yield app, client
    shutdown(app)
    drop_database(pg_cluster, db_url_module)


def embed(client, texts, fmt, dims=None):
    body = {"input": texts, "encoding_format": fmt, **({"dimensions": dims} if dims else {})}
    resp = client.post("/v1/embeddings", json=body)
    assert resp.status_code == 200, resp.get_json()
    return [d["embedding"] for d in resp.get_json()["data"]]


def decode(items, fmt, size):
    """What a client does: base64 -> bytes -> numpy, one row per input."""
    rows = [np.frombuffer(base64.b64decode(e), dtype=DTYPES[fmt]) for e in items]
    assert all(r.shape == (size,) for r in rows)
    return np.vstack(rows)


@pytest.mark.parametrize("dims", [None, 100])
@pytest.mark.parametrize("fmt", ["int8", "uint8", "binary", "ubinary"])
@pytest.mark.slow
def test_decoded_bytes_equal_sentence_transformers_quantization(served, fmt, dims):
    _, client = served
    d = dims or 384
    floats = np.array(embed(client, TEXTS, "float", dims), dtype=np.float32)
    if dims not in CALIBRATION:
        CALIBRATION[dims] = np.array(embed(client, list(calibration_texts()), "float", dims),
                                     dtype=np.float32)
    calibration = CALIBRATION[dims]
    size = d if fmt.endswith("int8") else -(-d // 8)
    got = decode(embed(client, TEXTS, fmt, dims), fmt, size)
    want = quantize_embeddings(floats, fmt, calibration_embeddings=calibration)
    assert want.dtype == got.dtype and want.shape == got.shape == (len(TEXTS), size)
    assert np.array_equal(got, want)
    if fmt == "uint8" and dims is None:  # the calibration set spans the whole scale
        calibrated = decode(embed(client, list(calibration_texts()), fmt, dims), fmt, d)
        assert (calibrated.min(0) == 0).all() and (calibrated.max(0) >= 254).all()


def test_binary_bits_are_the_signs_first_dimension_highest(served):
    _, client = served
    floats = np.array(embed(client, TEXTS, "float"))
    signs = np.unpackbits(decode(embed(client, TEXTS, "ubinary"), "ubinary", 48), axis=1)
    assert np.array_equal(signs.astype(bool), floats > 0)


def test_the_openai_sdk_passes_a_compact_format_through(served):
    import openai

    app, client = served
    with serve(app) as base:
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        result = sdk.embeddings.create(model=MINILM, input=TEXTS[:2], encoding_format="ubinary")
        rows = [base64.b64decode(d.embedding) for d in result.data]
        assert [len(r) for r in rows] == [48, 48]
        plain = sdk.embeddings.create(model=MINILM, input=TEXTS[:2])  # SDK's base64 as before
        assert len(plain.data[0].embedding) == 384
    resp = client.post("/v1/embeddings", json={"input": "x", "encoding_format": "int4"})
    assert resp.status_code == 400 and resp.get_json()["error"]["param"] == "encoding_format"
