"""The browser path on the server: supports_browser, the export, its files over HTTP, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from kgserve.browser import export as browser_export
from kgserve.providers import ProviderConfig, resolve
from kgserve.providers.export.convert import ONNX_MODEL, ONNX_QUANTIZED
from tests.support.backends import loaded
from tests.support.kgs import MINILM, MINILM_BODY
from tests.support.tiny_models import model_variant


def local_row(model: str, dims: int, config_id: int = 99, **extra) -> dict:
    """A config row as the database returns it (no database needed to describe it)."""
    return {"id": config_id, "provider": "local", "model_name": model,
            "embedding_dimensions": dims, "precision": "float32", "backend": "torch",
            "normalize_embeddings": True, "max_seq_length": None, **extra}


def test_openai_cannot_run_in_a_browser(client):
    body = client.get("/embedding/config").get_json()
    assert body["config_id"] == 1 and body["supports_browser"] is False
    assert body["browser"] is None and "only local models" in body["browser_unavailable"]


def test_a_local_config_says_where_its_browser_model_is(client, admin, minilm):
    body = client.get("/embedding/config").get_json()
    assert body["supports_browser"] is True and body["config_id"] == minilm["config_id"]
    browser = body["browser"]
    assert re.fullmatch(r"/browser/models/all-MiniLM-L6-v2\.[0-9a-f]{16}/", browser["model_url"])
    assert browser["quantized"] is True and browser["dimensions"] == 384
    assert browser["prefixes"] == {"query": "", "document": ""}
    assert browser["pooling"] == "mean" and browser["model_normalize"] is True
    assert browser["normalize"] is True and browser["max_seq_length"] == 256
    assert "browser_unavailable" not in body


@pytest.mark.parametrize("variant", ["minilm", "nomic", "nomic-cls-default-prompt"])
def test_what_the_page_is_told_matches_the_loaded_model(variant, tiny_nomic_dir, tmp_path):
    """The facts read from the model's files are the ones the server computes with."""
    from kgserve.providers.export.encoder import layout

    folder = {"minilm": MINILM, "nomic": str(tiny_nomic_dir)}.get(variant)
    if folder is None:
        folder = str(model_variant(tiny_nomic_dir, tmp_path / "variant", pooling="cls",
                                   normalize=False, st_config={"default_prompt_name": "query"}))
    facts = browser_export.describe(local_row(folder, 64, max_seq_length=100))
    provider = loaded(ProviderConfig(
        provider="local", model_name=folder, embedding_dimensions=64, device="cpu",
        max_seq_length=100))
    try:
        assert facts.prefixes == provider.prompts
        assert facts.default_prefix == provider._default_prompt
        assert facts.max_seq_length == provider.max_seq_length
        shape = layout(provider._st)
        assert (facts.pooling, facts.model_normalize) == (shape.pooling, shape.normalize)
    finally:
        provider.close()
    if variant == "nomic-cls-default-prompt":
        assert facts.default_prefix == "search_query: " and facts.pooling == "cls"


@pytest.mark.parametrize("change, reason", [
    ({"drop": ("tokenizer.json",)}, "no tokenizer.json"),
    ({"pooling_config": {"include_prompt": False}}, "excludes prompt tokens"),
    ({"pooling": "weightedmean"}, "pooling mode 'weightedmean' is not supported"),
])
def test_a_model_a_browser_cannot_run_says_why(change, reason, tiny_nomic_dir, tmp_path):
    folder = model_variant(tiny_nomic_dir, tmp_path / "variant", **change)
    summary = browser_export.summary(local_row(str(folder), 768))
    assert summary["supports_browser"] is False and summary["browser"] is None
    assert reason in summary["browser_unavailable"]


@pytest.mark.export
def test_model_files_are_exported_on_first_request_and_cached_for_good(client, admin, minilm):
    url = client.get("/embedding/config").get_json()["browser"]["model_url"]
    resp = client.get(url + "config.json")  # exports MiniLM unless this session did already
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert json.loads(resp.data)["model_type"] == "bert"
    body = client.get("/embedding/config").get_json()["browser"]
    assert body["exported"] is True and body["quantized"] is True
    assert body["accuracy"]["min_cosine"] >= 0.99 and body["accuracy"]["probes"] >= 64
    etag = resp.headers["ETag"].strip('"')
    assert re.fullmatch(r"[0-9a-f]{64}", etag)  # the file's sha256 from the export's manifest
    assert "immutable" in resp.headers["Cache-Control"]
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    again = client.get(url + "config.json", headers={"If-None-Match": f'"{etag}"'})
    assert again.status_code == 304
    head = client.get(url + ONNX_MODEL, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and len(head.data) == 10
    assert head.mimetype == "application/octet-stream"
    full = int(head.headers["Content-Range"].rsplit("/", 1)[1])
    small = client.get(url + ONNX_QUANTIZED, headers={"Range": "bytes=0-0"})
    assert int(small.headers["Content-Range"].rsplit("/", 1)[1]) < 0.35 * full  # int8 weights
    for name in ("kgserve-export.json", "../config.json", "onnx/../../x", "vocab.tx"):
        missing = client.get(url + name)
        assert missing.status_code == 404 and missing.get_json()["success"] is False
    other = client.get("/browser/models/all-MiniLM-L6-v2.0000000000000000/config.json")
    assert other.status_code == 404 and other.get_json()["error"] == "browser_model_not_active"


def test_the_page_module_and_runtime_are_served_with_their_types(client):
    for path, mimetype in [("/browser/", "text/html"), ("/browser/kgembed.js", "text/javascript"),
                           ("/browser/sw.js", "text/javascript"),
                           ("/browser/vendor/transformers.min.js", "text/javascript"),
                           ("/browser/vendor/ort-wasm-simd-threaded.asyncify.mjs",
                            "text/javascript"),
                           ("/browser/vendor/ort-wasm-simd-threaded.asyncify.wasm",
                            "application/wasm")]:
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.data[:200])
        assert resp.mimetype == mimetype and "no-cache" in resp.headers["Cache-Control"]
        assert resp.headers["Content-Type"].count("charset") <= 1, resp.headers["Content-Type"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert client.get(path, headers={"If-None-Match": resp.headers["ETag"]}).status_code == 304
    assert client.get("/browser").status_code in (301, 308)  # to /browser/
    for path in ("/browser/package.json", "/browser/vendor/ort.min.js", "/browser/.hidden",
                 "/browser/vendor/..%2Fpackage.json"):
        assert client.get(path).status_code == 404, path


def test_a_quantized_graph_below_the_bound_is_not_offered(client, admin, tiny_nomic_dir,
                                                          monkeypatch):
    monkeypatch.setattr(browser_export, "INT8_BOUND", 0.9999999)  # stricter than it reaches
    body = {**MINILM_BODY, "model_name": str(tiny_nomic_dir), "embedding_dimensions": 96}
    assert client.post("/admin/embedding/config", json=body, headers=admin).status_code == 200
    url = client.get("/embedding/config").get_json()["browser"]["model_url"]
    assert client.get(url + "tokenizer.json").status_code == 200  # export + guard
    browser = client.get("/embedding/config").get_json()["browser"]
    assert browser["quantized"] is False and browser["accuracy"]["passed"] is False
    assert browser["accuracy"]["bound"] == 0.9999999
    refused = client.get(url + ONNX_QUANTIZED)
    assert refused.status_code == 404 and refused.get_json()["error"] == "quantized_refused"
    assert client.get(url + ONNX_MODEL, headers={"Range": "bytes=0-0"}).status_code == 206


def test_a_failed_export_is_remembered_and_retried_on_request(tiny_nomic_dir, tmp_path,
                                                              monkeypatch):
    folder = tmp_path / "custom-code-model"
    model_variant(tiny_nomic_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom_nomic", auto_map={"AutoModel": "modeling_custom.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setitem(resolve.KNOWN_MODELS, str(folder),
                        resolve.KnownModel(trust_remote_code=True))
    row = local_row(str(folder), 768)
    model = browser_export.describe(row)  # the files look fine: it "can be made"
    assert browser_export.summary(row)["supports_browser"] is True
    with pytest.raises(browser_export.NotForBrowser, match="needs trust_remote_code"):
        browser_export.ensure(model)
    summary = browser_export.summary(row)  # every worker reads the failure beside the cache
    assert summary["supports_browser"] is False
    assert "cannot be exported for a browser" in summary["browser_unavailable"]
    with pytest.raises(browser_export.NotForBrowser, match="needs trust_remote_code"):
        browser_export.prepare(row)  # the operator's command tries again


@pytest.mark.export
def test_the_cli_prepares_the_export(app, admin, minilm):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["embedding", "browser"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["quantized"] is True and body["accuracy"]["min_cosine"] >= 0.99
    assert body["model_url"] == app.test_client().get("/embedding/config").get_json()[
        "browser"]["model_url"]


def test_the_cli_says_why_openai_has_no_browser_export(app):
    out = app.test_cli_runner().invoke(args=["embedding", "browser"])
    assert out.exit_code == 1 and "only local models run in a browser" in out.output


def test_a_model_file_changed_on_disk_is_never_sent_under_its_old_etag(client, admin,
                                                                        tiny_nomic_dir):
    """Model files go out `immutable` for a year under their sha256: after a change on disk
    (same size, mtime put back) the server checks again and sends what the ETag names."""
    body = {**MINILM_BODY, "model_name": str(tiny_nomic_dir), "embedding_dimensions": 128}
    assert client.post("/admin/embedding/config", json=body, headers=admin).status_code == 200
    url = client.get("/embedding/config").get_json()["browser"]["model_url"]
    first = client.get(url + "tokenizer_config.json")
    assert first.status_code == 200 and "immutable" in first.headers["Cache-Control"]
    etag = first.headers["ETag"].strip('"')
    assert hashlib.sha256(first.data).hexdigest() == etag

    row = client.get("/admin/embedding/config", headers=admin).get_json()
    path = browser_export.ensure(browser_export.describe(row)).folder / "tokenizer_config.json"
    before = path.stat()
    tampered = first.data.replace(b'"', b"'", 1)
    assert len(tampered) == len(first.data) and tampered != first.data
    path.write_bytes(tampered)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    again = client.get(url + "tokenizer_config.json")
    assert again.status_code == 200
    assert again.data == first.data and again.headers["ETag"].strip('"') == etag
    assert path.read_bytes() == first.data  # the export was checked and made again
    ranged = client.get(url + "tokenizer_config.json", headers={"Range": "bytes=0-4"})
    assert ranged.status_code == 206 and ranged.data == first.data[:5]
    assert client.get(url + "tokenizer_config.json",
                      headers={"If-None-Match": f'"{etag}"'}).status_code == 304
