"""/openapi.json is a valid OpenAPI 3 document; importing kgserve does no I/O and no torch."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.kgs import REPO

PATHS = {"/embedding/config", "/admin/embedding/config", "/admin/embedding/configs",
         "/admin/embedding/config/reload", "/v1/embeddings", "/v1/models", "/v1/models/{model}",
         "/metrics", "/healthz", "/v1/tokenize", "/tokenize", "/readyz", "/openapi.json",
         "/browser/", "/browser/kgembed.js", "/browser/models/{model_id}/{file}"}


def test_openapi_document_is_valid_and_lists_every_path(client):
    from openapi_spec_validator import validate

    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == PATHS
    assert set(doc["paths"]["/admin/embedding/config"]) == {"get", "post"}
    request = doc["components"]["schemas"]["ConfigRequest"]
    assert request["properties"]["model_name"]["maxLength"] == 200
    assert request["properties"]["provider"]["enum"] == ["local", "openai"]
    assert set(request["required"]) == {"provider", "model_name", "embedding_dimensions",
                                        "precision"}
    assert "EmbeddingsResponse" in doc["components"]["schemas"]
    embeddings = doc["components"]["schemas"]["EmbeddingsRequest"]["properties"]
    tokenize = doc["components"]["schemas"]["TokenizeRequest"]["properties"]
    assert tokenize["input"] == embeddings["input"]  # the same limits
    assert embeddings["truncate"]["type"] == "boolean"
    assert "501" in doc["paths"]["/v1/tokenize"]["post"]["responses"]


def test_import_and_app_creation_do_no_io_and_skip_heavy_modules():
    # An unreachable database: import and create_app must neither connect nor wait.
    code = (
        "import sys, kgserve\n"
        "app = kgserve.create_app()\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'openai')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "rt = app.extensions['kgserve']\n"
        "assert rt.db._pool is None and rt.manager.current() is None\n"
        "assert rt.listener is None\n"
        "import threading; assert threading.active_count() == 1, threading.enumerate()\n"
        "print('ok')\n")
    env = {**os.environ, "KG_DATABASE_URL": "postgresql://nobody@192.0.2.1:1/none"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_document_says_what_the_server_does(client):
    doc = client.get("/openapi.json").get_json()
    embeddings = doc["paths"]["/v1/embeddings"]["post"]
    assert {"400", "409", "413", "429", "503"} <= set(embeddings["responses"])
    assert "x-kgserve-config-id" in embeddings["responses"]["200"]["headers"]
    text, texts = doc["components"]["schemas"]["EmbeddingsRequest"]["properties"]["input"]["oneOf"]
    assert text["minLength"] == 1 and texts["items"]["minLength"] == 1
    assert texts["minItems"] == 1
    assert "/metrics" in doc["paths"]
    assert {"scope", "pid", "reasons"} <= set(doc["components"]["schemas"]["Health"]["properties"])
