"""The browser path in a real headless Chromium: /browser/, kgembed.js, transformers.js, offline.

One Chromium and one served kgserve (on its own database) for the module; each test opens a fresh
browser context (an empty profile: no cached model, no service worker).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kgserve.browser import export as browser_export
from kgserve.providers.export.probes import probe_texts
from tests.support.browser import Page, launch
from tests.support.kgs import ADMIN_TOKEN, MINILM, MINILM_BODY, make_app, migrate, serve
from tests.support.pg import create_database, drop_database
from tests.support.tiny_models import model_variant

pytestmark = [pytest.mark.timeout(900), pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LONG = " ".join(["PostgreSQL keeps the vectors next to the rows they describe."] * 60)
BOUND = {False: 0.999, True: 0.99}  # float graph, int8-weight graph: min cosine to the server


@dataclass
class Site:
    app: object
    base: str

    def activate(self, body: dict) -> dict:
        resp = self.app.test_client().post("/admin/embedding/config", json=body, headers=ADMIN)
        assert resp.status_code == 200, resp.get_json()
        row = self.app.test_client().get("/admin/embedding/config", headers=ADMIN).get_json()
        browser_export.prepare(row)  # export now: the page tests do not wait for it
        return row

    def server_vectors(self, texts: list[str], input_type=None, dimensions=None) -> np.ndarray:
        body = {"input": texts, "input_type": input_type}
        if dimensions:
            body["dimensions"] = dimensions
        resp = self.app.test_client().post("/v1/embeddings", json=body)
        assert resp.status_code == 200, resp.get_json()
        return np.array([d["embedding"] for d in resp.get_json()["data"]], dtype=np.float64)


@pytest.fixture(scope="module")
def site(pg_cluster, tmp_path_factory):
    url = create_database(pg_cluster)
    migrate(url, tmp_path_factory.mktemp("backups"))
    app = make_app(url)
    try:
        with serve(app) as base:
            served = Site(app, base)
            served.activate(MINILM_BODY)
            yield served
    finally:
        from kgserve import shutdown

        shutdown(app)
        drop_database(pg_cluster, url)


@pytest.fixture
def minilm_site(site):
    site.activate(MINILM_BODY)
    return site


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, site):
    opened = Page(chromium, site.base)
    yield opened
    opened.close()


def browser_vectors(page: Page, texts, input_type=None, dimensions=None, quantized=None):
    return np.array(page.js(
        "async (kg, a) => { kg.configure({quantized: a.quantized}); await kg.refresh(); "
        "const vs = await kg.embed(a.texts, {inputType: a.inputType, dimensions: a.dimensions}); "
        "return vs.map((v) => Array.from(v)); }",
        {"texts": texts, "inputType": input_type, "dimensions": dimensions,
         "quantized": quantized}), dtype=np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("quantized", [False, True])
def test_minilm_in_the_browser_gives_the_servers_vectors(minilm_site, page, quantized):
    texts = [*probe_texts(), LONG]  # 20 languages, code, emoji; one text past max_seq_length
    for input_type in (None, "query", "document"):
        got = browser_vectors(page, texts, input_type, quantized=quantized)
        want = minilm_site.server_vectors(texts, input_type)
        assert got.shape == want.shape == (len(texts), 384)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert cosines(got, want).min() >= BOUND[quantized]
    info = page.js("async (kg) => kg.info()")
    assert info["quantized"] is quantized and info["model"] == MINILM
    wanted = "/onnx/model_quantized.onnx" if quantized else "/onnx/model.onnx"
    assert any(u.endswith(wanted) for u in page.requests)
    assert page.foreign_requests() == [] and page.errors == []


def test_tiny_nomic_prefixes_and_matryoshka_dimensions(site, page, tiny_nomic_dir):
    row = site.activate({"provider": "local", "model_name": str(tiny_nomic_dir),
                         "embedding_dimensions": 256, "precision": "float32", "device": "cpu",
                         "allow_dimension_change": True})
    try:
        texts = ["The quick brown fox.", "a", "Wie spät ist es?", LONG]
        for quantized in (False, True):
            for input_type in ("query", "document", None):
                for dims in (None, 64):
                    got = browser_vectors(page, texts, input_type, dims, quantized)
                    want = site.server_vectors(texts, input_type, dims)
                    assert got.shape == want.shape == (4, dims or 256)
                    assert cosines(got, want).min() >= BOUND[quantized]
        query = browser_vectors(page, ["x"], "query")
        document = browser_vectors(page, ["x"], "document")
        assert cosines(query, document)[0] < 0.999  # "search_query: " vs "search_document: "
        config = page.js("async (kg) => kg.serverConfig()")
        assert config["browser"]["prefixes"] == {"query": "search_query: ",
                                                 "document": "search_document: "}
        assert config["browser"]["dimensions"] == 256 and config["config_id"] == row["id"]
    finally:
        site.activate(MINILM_BODY)


@pytest.mark.parametrize("pooling, normalize", [("cls", True), ("max", False)])
def test_cls_and_max_pooling_without_a_normalize_module(site, page, tiny_nomic_dir, tmp_path,
                                                        pooling, normalize):
    folder = model_variant(tiny_nomic_dir, tmp_path / pooling, pooling=pooling, normalize=False)
    site.activate({"provider": "local", "model_name": str(folder), "embedding_dimensions": 768,
                   "precision": "float32", "device": "cpu", "normalize_embeddings": normalize,
                   "allow_dimension_change": True})
    try:
        texts = ["The quick brown fox.", "a", "Wie spät ist es?", LONG]
        for dims in (None, 128):
            got = browser_vectors(page, texts, "document", dims, quantized=False)
            want = site.server_vectors(texts, "document", dims)
            assert got.shape == want.shape == (4, dims or 768)
            assert cosines(got, want).min() >= 0.999
            # Not normalised by either side: the lengths must match as well.
            assert np.allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1),
                               rtol=1e-3)
    finally:
        site.activate(MINILM_BODY)


LABELLED = [  # (query, the document it is about)
    ("Which database keeps embeddings next to my rows?", 0),
    ("Where can I see the Eiffel Tower?", 1),
    ("Why does bread dough rise?", 2),
    ("my cat naps in the sun", 3),
]
DOCS = ["PostgreSQL with the pgvector extension stores embeddings in a table column.",
        "The Eiffel Tower stands in Paris, France.",
        "Yeast produces carbon dioxide, which makes bread dough rise.",
        "A cat sleeps on the warm windowsill all afternoon.",
        "Rust's borrow checker prevents data races at compile time."]


def test_rank_and_rerank_put_the_right_document_first(minilm_site, page):
    result = page.js(
        """async (kg, a) => {
          const docs = await kg.embed(a.docs, {inputType: 'document'});
          const out = [];
          for (const [query] of a.labelled) {
            const ranked = await kg.rank(query, docs, {k: 3});
            const reranked = await kg.rerank(query, a.docs.map((text, i) =>
              i % 2 ? text : {text, vector: docs[i]}), {k: 3});
            out.push({ranked, reranked});
          }
          return out;
        }""", {"docs": DOCS, "labelled": LABELLED})
    for (query, expected), got in zip(LABELLED, result):
        assert got["ranked"][0]["index"] == expected, (query, got)
        assert len(got["ranked"]) == 3 and got["ranked"][0]["score"] >= got["ranked"][1]["score"]
        reranked = got["reranked"]
        assert reranked[0]["index"] == expected, (query, reranked)
        assert len(reranked) == 3 and reranked[0]["score"] >= reranked[1]["score"]
        # The second pass scored with the server's vectors: the same cosine up to the browser's.
        server = minilm_site.server_vectors([query], "query")[0]
        doc = minilm_site.server_vectors([DOCS[expected]], "document")[0]
        assert reranked[0]["score"] == pytest.approx(float(server @ doc), abs=1e-5)
        assert reranked[0]["browserScore"] == pytest.approx(reranked[0]["score"], abs=0.01)
    assert page.foreign_requests() == []


def test_a_config_switch_reaches_an_open_page(site, page, tiny_nomic_dir):
    site.activate(MINILM_BODY)
    first = page.js("async (kg) => { kg.configure({followSeconds: 1}); return await kg.ready(); }")
    assert first["model"] == MINILM and first["dimensions"] == 384
    row = site.activate({"provider": "local", "model_name": str(tiny_nomic_dir),
                         "embedding_dimensions": 768, "precision": "float32", "device": "cpu",
                         "allow_dimension_change": True})
    try:
        page.page.wait_for_function(f"window.kgPage && document.getElementById('model')"
                                    f".textContent.startsWith('config {row['id']}:')")
        page.page.wait_for_function(
            f"import('/browser/kgembed.js').then((kg) => kg.info()?.configId === {row['id']})")
        got = browser_vectors(page, ["hello there"], "query")
        assert got.shape == (1, 768)
        assert cosines(got, site.server_vectors(["hello there"], "query"))[0] >= 0.99
    finally:
        site.activate(MINILM_BODY)


def test_the_page_works_offline_after_the_first_load(chromium, site, tmp_path):
    """Load once, then take the server away and cut the network: the page still embeds."""
    site.activate(MINILM_BODY)
    with serve(site.app) as base:  # a server (an origin) of its own, stopped mid-test
        page = Page(chromium, base)
        try:
            page.page.wait_for_function("navigator.serviceWorker.controller !== null")
            online = browser_vectors(page, ["offline embeddings", "still work"], "query")
            page.page.wait_for_function("document.getElementById('status').dataset.state"
                                        " === 'ready'")
        except BaseException:
            page.close()
            raise
    try:
        page.context.set_offline(True)  # and the server is gone: two cuts
        page.page.reload()
        page.page.wait_for_function("document.getElementById('status').dataset.state"
                                    " === 'ready'")
        assert "(offline: last known config)" in page.page.text_content("#model")
        offline = browser_vectors(page, ["offline embeddings", "still work"], "query")
        assert np.allclose(offline, online, atol=1e-6)
        assert page.foreign_requests() == []
    finally:
        page.close()


def test_the_page_compares_browser_and_server(minilm_site, page, tmp_path):
    """The page's own form: both rankings, the per-text cosine, timings; a screenshot."""
    page.page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    page.page.click("#go")
    page.page.wait_for_function("window.kgPage.last !== null")
    last = page.page.evaluate("window.kgPage.last")
    assert last["serverError"] is None and last["queryCosine"] >= 0.99
    rows = last["rows"]
    assert [r["browserRank"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["doc"].startswith(("PostgreSQL", "Vector databases"))
    assert rows[0]["serverRank"] == 1
    assert all(r["cosine"] >= 0.99 for r in rows)
    assert "server round trip" in page.page.text_content("#timings")
    shot = tmp_path / "kgserve-browser-page.png"
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("KG_TEST_ARTIFACTS")
    if artifacts:  # keep it beyond pytest's temporary folders
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
