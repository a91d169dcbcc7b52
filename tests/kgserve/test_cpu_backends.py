"""The onnx and openvino backends: real exports of MiniLM and a tiny NomicBert, the accuracy guard."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

from kgserve.providers import ProviderConfig, ProviderError, build_provider
from kgserve.providers.export.guard import AccuracyRefused
from tests.support.backends import cosine, cpu, loaded
from tests.support.kgs import MINILM, MINILM_BODY, ONNX_BODY

TEXTS = ["The quick brown fox jumps over the lazy dog.", "PostgreSQL stores the vectors.",
         "a", "Wie spät ist es?", "北京今天的天气怎么样？"]


@pytest.fixture(scope="module")
def torch_minilm():
    provider = loaded(ProviderConfig(provider="local", model_name=MINILM,
                                     embedding_dimensions=384, device="cpu"))
    yield provider
    provider.close()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.export
def test_float32_exports_serve_what_torch_serves(backend, torch_minilm, model_cache):
    provider = loaded(cpu(backend))
    try:
        out = provider.embed(TEXTS, input_type="query")
        ref = torch_minilm.embed(TEXTS, input_type="query")
        assert out.vectors.shape == (5, 384) and out.vectors.dtype == np.float32
        assert cosine(out.vectors, ref.vectors).min() >= 0.999
        assert out.prompt_tokens == ref.prompt_tokens
        assert provider.embed(TEXTS).tokens.seen == torch_minilm.embed(TEXTS).tokens.seen
        assert provider.guard.passed and provider.guard.min_cosine >= 0.999
        assert provider.guard.probes >= 64 and provider.guard.bound == 0.999
        assert model_cache in provider.export_path.parents
        short = provider.embed(TEXTS, dimensions=64).vectors
        assert short.shape == (5, 64)
        assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    finally:
        provider.close()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.export
def test_counted_ids_go_to_the_session_without_a_second_tokenizer_pass(backend, torch_minilm,
                                                                         monkeypatch):
    provider = loaded(cpu(backend))
    long = "tokens " * 400  # longer than the model reads: the tokenizer decides where to cut
    texts = [*TEXTS, long]
    try:
        done = provider.tokenized(texts, "query")
        assert done.lengths == provider.token_lengths(texts, "query") and done.lengths[-1] > 256
        by_text = provider.encode(texts, "query")
        passes = []
        features = provider._cpu.features
        monkeypatch.setattr(provider._cpu, "features", lambda t: passes.append(t) or features(t))
        by_ids = provider.encode(texts, "query", rows=done.rows)
        assert np.allclose(by_ids, by_text, atol=1e-5)
        assert cosine(by_ids, torch_minilm.embed(texts, input_type="query").vectors).min() >= 0.999
        assert len(passes) == 1 and passes[0][-1].endswith(long)  # the chunk holding it
        short = provider.tokenized(TEXTS)
        passes.clear()
        by_ids = provider.encode(TEXTS, rows=short.rows)
        assert passes == []
        assert np.allclose(by_ids, provider.embed(TEXTS).vectors, atol=1e-5)
    finally:
        provider.close()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.export
def test_int8_is_served_only_when_the_guard_passes(backend, torch_minilm):
    provider = build_provider(cpu(backend, "int8"))
    try:
        provider.load()
    except AccuracyRefused as exc:  # this CPU's int8 kernels are not accurate enough here
        figure = float(re.search(r"min cosine ([\d.]+)", str(exc)).group(1))
        assert figure < 0.98 and exc.param == "precision"
        return
    try:
        assert provider.guard.bound == 0.98 and provider.guard.min_cosine >= 0.98
        out = provider.embed(TEXTS)
        assert cosine(out.vectors, torch_minilm.embed(TEXTS).vectors).min() >= 0.95
        assert provider.export_path.name.startswith(f"{backend}-int8-")
    finally:
        provider.close()


@pytest.mark.export
def test_kg_min_cosine_overrides_the_bound(monkeypatch):
    monkeypatch.setenv("KG_MIN_COSINE", "0.9999999")
    with pytest.raises(AccuracyRefused, match="bound 0.9999999"):
        loaded(cpu("onnx", "int8"))
    monkeypatch.setenv("KG_MIN_COSINE", "0.5")
    provider = loaded(cpu("onnx", "int8"))
    assert provider.guard.bound == 0.5 and provider.guard.passed
    provider.close()
    monkeypatch.setenv("KG_MIN_COSINE", "high")
    with pytest.raises(ProviderError, match="KG_MIN_COSINE"):
        loaded(cpu("onnx", "int8"))


def test_tiny_nomic_exports_natively_with_its_prompts(tiny_nomic_dir):
    ref = loaded(ProviderConfig(provider="local", model_name=str(tiny_nomic_dir),
                                embedding_dimensions=768, device="cpu"))
    try:
        for backend in ("onnx", "openvino"):
            provider = loaded(cpu(backend, model=str(tiny_nomic_dir), dims=768))
            try:
                assert provider.guard.passed
                for kind in ("query", "document"):
                    got = provider.embed(TEXTS, input_type=kind)
                    want = ref.embed(TEXTS, input_type=kind)
                    assert cosine(got.vectors, want.vectors).min() >= 0.999
                    assert got.prompt_tokens == want.prompt_tokens
                assert not np.allclose(provider.embed(["x"], input_type="query").vectors,
                                       provider.embed(["x"], input_type="document").vectors)
            finally:
                provider.close()
    finally:
        ref.close()


def test_a_model_needing_remote_code_is_refused_with_the_reason(tiny_nomic_dir, tmp_path,
                                                                monkeypatch):
    import json
    import shutil

    from kgserve.providers import resolve

    folder = tmp_path / "custom-code-model"
    shutil.copytree(tiny_nomic_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom_nomic", auto_map={"AutoModel": "modeling_custom.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setitem(resolve.KNOWN_MODELS, str(folder),
                        resolve.KnownModel(trust_remote_code=True))
    with pytest.raises(ProviderError, match="needs trust_remote_code") as err:
        loaded(cpu("onnx", model=str(folder), dims=768))
    assert err.value.param == "backend"


# -- through the admin API ------------------------------------------------------------------


@pytest.mark.export
def test_admin_api_serves_onnx_and_reports_the_guard(client, admin, kg_url, caplog):
    with caplog.at_level(logging.INFO, logger="kgserve"):
        resp = client.post("/admin/embedding/config", json=ONNX_BODY, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert re.search(r"backend onnx, precision float32\) in [\d.]+s; guard min cosine 1\.0000, "
                     r"mean 1\.0000 to torch float32 over \d+ probe texts", caplog.text)
    body = client.get("/admin/embedding/config", headers=admin).get_json()
    assert body["backend"] == "onnx"
    status = body["model_status"]
    assert status["backend"] == "onnx" and status["precision"] == "float32"
    accuracy = status["accuracy"]
    assert accuracy["min_cosine"] >= 0.999 and accuracy["mean_cosine"] >= 0.999
    assert accuracy["bound"] == 0.999 and accuracy["probes"] >= 64 and accuracy["passed"]
    public = client.get("/embedding/config").get_json()
    assert public["resource_allocation"]["backend"] == "onnx"
    out = client.post("/v1/embeddings", json={"input": ["hello", "world"]}).get_json()
    assert len(out["data"]) == 2 and len(out["data"][0]["embedding"]) == 384
    metrics = client.get("/metrics").get_data(as_text=True)
    series = (r'kgserve_accuracy_min_cosine\{backend="onnx",model="' + re.escape(MINILM)
              + r'",precision="float32"\} (0\.999\d*|1\.0)')
    assert re.search(series, metrics)


@pytest.mark.export
def test_a_refused_config_changes_nothing(client, admin, kg_url, minilm, monkeypatch):
    before = client.get("/admin/embedding/config", headers=admin).get_json()
    threads = torch.get_num_threads()
    monkeypatch.setenv("KG_MIN_COSINE", "0.9999999")
    resp = client.post("/admin/embedding/config", headers=admin,
                       json={**ONNX_BODY, "precision": "int8", "num_threads": threads + 3})
    assert resp.status_code == 422
    err = resp.get_json()
    assert err["error"] == "accuracy_guard_refused" and err["param"] == "precision"
    assert "min cosine" in err["message"] and "bound 0.9999999" in err["message"]
    after = client.get("/admin/embedding/config", headers=admin).get_json()
    assert after["id"] == before["id"] and after["backend"] == "torch"
    assert after["model_status"]["config_id"] == before["model_status"]["config_id"]
    assert after["model_status"]["backend"] == "torch"
    assert torch.get_num_threads() == threads
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'kgserve_accuracy_guard_refusals_total{backend="onnx"' in metrics


@pytest.mark.slow
def test_a_refused_torch_config_leaves_the_thread_count(client, admin, minilm):
    threads = torch.get_num_threads()
    resp = client.post("/admin/embedding/config", headers=admin,
                       json={**MINILM_BODY, "embedding_dimensions": 999,
                             "num_threads": threads + 2})
    assert resp.status_code == 422 and "native size" in resp.get_json()["message"]
    assert torch.get_num_threads() == threads


@pytest.mark.export
def test_cli_sets_the_backend(app, kg_url):
    import json

    import psycopg

    out = app.test_cli_runner().invoke(args=[
        "embedding", "set", "--provider", "local", "--model-name", MINILM, "--dimensions", "384",
        "--backend", "openvino", "--allow-dimension-change"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output[out.output.index("{"):])["success"] is True
    with psycopg.connect(kg_url) as conn:
        row = conn.execute("SELECT backend, precision FROM kg_api.embedding_config "
                           "WHERE active").fetchone()
    assert row == ("openvino", "float32")
    out = app.test_cli_runner().invoke(args=[
        "embedding", "set", "--provider", "local", "--model-name", MINILM, "--dimensions", "384",
        "--precision", "int8"])
    assert out.exit_code == 1 and "int8 needs backend onnx or openvino" in out.output
