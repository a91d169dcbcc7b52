"""/metrics, the timing headers, 429 backpressure and bad-input isolation through the HTTP API."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kgserve import shutdown
from kgserve.runtime import runtime
from tests.support.gate import Gate
from tests.support.kgs import MINILM_BODY, call, make_app
from tests.support.waiting import join, start_threads, wait_for


def scrape(client) -> dict[tuple[str, tuple], float]:
    """GET /metrics and return {(sample name, sorted labels): value}."""
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    return samples_of(resp.get_data(as_text=True))


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    """Parse Prometheus' text format into {(sample name, sorted labels): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def small_queue_app(kg_url, admin):
    """An app whose batching queue holds at most 2 texts, serving MiniLM."""
    app = make_app(kg_url, BATCH_MAX_QUEUE=2)
    client = app.test_client()
    assert client.post("/admin/embedding/config", json=MINILM_BODY,
                       headers=admin).status_code == 200
    yield app
    shutdown(app)


def gated_queue(app, monkeypatch) -> tuple[Gate, object]:
    """Put a Gate in front of the model of `app`'s batching queue; return (gate, queue)."""
    queue = runtime(app).manager.current().queue
    monkeypatch.setattr(queue, "provider", Gate(queue.provider))
    return queue.provider, queue


def post_in_threads(app, bodies: list):
    """POST each body to /v1/embeddings from its own thread (own test client)."""
    def post(body):
        kw = {"data": body, "content_type": "application/json"} if isinstance(body, str) \
            else {"json": body}
        return lambda: app.test_client().post("/v1/embeddings", **kw)

    return start_threads([post(b) for b in bodies])


def wait_queued(queue, n: int) -> None:
    wait_for(lambda: queue.queued == n, f"{n} texts in the queue")


def test_timing_headers_and_metrics(client, minilm):
    before = scrape(client)
    resp = client.post("/v1/embeddings", json={"input": ["hello", "world"]})
    assert resp.status_code == 200
    queue_ms, inference_ms = (float(resp.headers[h]) for h in ("x-queue-time",
                                                                "x-inference-time"))
    assert queue_ms >= 0 and inference_ms > 0
    assert client.post("/v1/embeddings", json={"input": 3}).status_code == 400
    after = scrape(client)

    ok = {"endpoint": "/v1/embeddings", "method": "POST", "status": "200"}
    bad = {"endpoint": "/v1/embeddings", "method": "POST", "status": "400"}
    assert value(after, "kgserve_http_requests_total", **ok) == \
        value(before, "kgserve_http_requests_total", **ok) + 1
    assert value(after, "kgserve_http_requests_total", **bad) == \
        value(before, "kgserve_http_requests_total", **bad) + 1
    fail = {"endpoint": "/v1/embeddings", "status": "400"}
    assert value(after, "kgserve_http_request_failures_total", **fail) == \
        value(before, "kgserve_http_request_failures_total", **fail) + 1
    # One model call of two texts, and its timings.
    for name, grew in (("kgserve_batch_size_count", 1), ("kgserve_batch_size_sum", 2),
                       ("kgserve_inference_seconds_count", 1),
                       ("kgserve_queue_wait_seconds_count", 1)):
        assert value(after, name) - value(before, name) == grew, name
    assert value(after, "kgserve_inference_seconds_sum") > value(before,
                                                                "kgserve_inference_seconds_sum")
    assert value(after, "kgserve_batch_padded_tokens_sum") - \
        value(before, "kgserve_batch_padded_tokens_sum") == 2 * 3  # [CLS] word [SEP], twice
    assert value(after, "kgserve_batch_queue_texts") == 0
    load = {"provider": "local", "model": MINILM_BODY["model_name"]}
    assert value(after, "kgserve_model_load_seconds_count", **load) >= 1
    assert value(after, "kgserve_model_load_seconds_sum", **load) > 0
    # Unknown paths share one series instead of creating one each.
    client.get("/no/such/path")
    assert value(scrape(client), "kgserve_http_requests_total", endpoint="<unmatched>",
                 method="GET", status="404") >= 1


def test_a_full_queue_answers_429_with_retry_after(small_queue_app, monkeypatch):
    gate, queue = gated_queue(small_queue_app, monkeypatch)
    with gate.held(queue):
        first, threads = post_in_threads(small_queue_app, [{"input": ["one", "two"]}])
        wait_queued(queue, 2)
        refused = small_queue_app.test_client().post("/v1/embeddings", json={"input": "three"})
    join(threads)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.get_json()["error"]
    assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
    assert first[0].status_code == 200 and len(first[0].get_json()["data"]) == 2
    again = small_queue_app.test_client().post("/v1/embeddings", json={"input": "three"})
    assert again.status_code == 200


def test_a_bad_input_fails_only_its_request(client, minilm, app, monkeypatch):
    gate, queue = gated_queue(app, monkeypatch)
    good = {"input": ["a good query", "another"]}
    bad = '{"input": ["fine", "broken \\ud800 text"]}'  # a lone surrogate: valid JSON, bad text
    with gate.held(queue):
        results, threads = post_in_threads(app, [good, bad, {"input": "third"}])
        wait_queued(queue, 3)  # the bad one is refused at the edge and never queues
    join(threads)
    assert results[1].status_code == 400
    assert results[1].get_json()["error"]["code"] == "invalid_request"
    assert "input[1]" in results[1].get_json()["error"]["message"]
    assert [r.status_code for r in (results[0], results[2])] == [200, 200]
    solo = client.post("/v1/embeddings", json=good).get_json()
    assert results[0].get_json()["data"][1]["embedding"] == pytest.approx(
        solo["data"][1]["embedding"], abs=1e-5)


@pytest.mark.gunicorn
def test_metrics_add_up_across_gunicorn_workers(gunicorn_server):
    srv = gunicorn_server
    code, body = call(srv.base, "POST", "/admin/embedding/config", MINILM_BODY, admin=True)
    assert code == 200, body
    srv.converge(body["config_id"])  # both workers serve MiniLM (and answered status calls)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: call(srv.base, "POST", "/v1/embeddings",
                                             {"input": f"text {i}"})[0], range(40)))
        statuses = list(pool.map(lambda _: call(srv.base, "GET", "/admin/embedding/config",
                                                admin=True)[1]["model_status"]["pid"],
                                 range(32)))
    assert codes == [200] * 40
    with urllib.request.urlopen(srv.base + "/metrics", timeout=60) as resp:
        samples = samples_of(resp.read().decode())
    ok = {"endpoint": "/v1/embeddings", "method": "POST", "status": "200"}
    assert len(set(statuses)) == 2  # two processes answered...
    assert value(samples, "kgserve_http_requests_total", **ok) == 40  # ...and /metrics adds up
    assert value(samples, "kgserve_batch_size_sum") >= 40  # (warm-up calls are not batched)
    assert value(samples, "kgserve_model_load_seconds_count", provider="local",
                 model=MINILM_BODY["model_name"]) == 2
    assert value(samples, "kgserve_batch_queue_texts") == 0


def test_invented_methods_and_paths_add_a_bounded_number_of_series(client):
    """Label values come from closed sets: 300 requests with invented methods and paths fold
    into one "other" method and the "<unmatched>" endpoint."""
    client.open("/invented", method="XWARMUP")  # the series the folded values use exist now
    client.open("/v1/embeddings", method="XWARMUP")
    client.get("/metrics")  # and those of /metrics itself
    before = client.get("/metrics").get_data(as_text=True)
    for i in range(300):
        assert client.open(f"/invented/{i}", method=f"XFVOGL{i}").status_code in (404, 405)
        assert client.open("/v1/embeddings", method=f"ZQ{i}").status_code == 405
    after = client.get("/metrics").get_data(as_text=True)
    added = len(after.splitlines()) - len(before.splitlines())
    assert added == 0, added
    assert "XFVOGL" not in after and "ZQ1" not in after and "invented" not in after
    samples = samples_of(after)
    assert value(samples, "kgserve_http_requests_total", endpoint="<unmatched>", method="other",
                 status="404") >= 300


def test_a_status_outside_http_and_many_models_fold_into_other():
    from kgserve import metrics

    assert metrics.status_label(200) == "200" and metrics.status_label(999) == "other"
    assert metrics.method_label("PATCH") == "PATCH" and metrics.method_label("get") == "other"
    labels = [metrics.config_labels("local", f"model-{i}", "onnx", "int8")["model"]
              for i in range(metrics.MAX_MODELS * 3)]
    assert len(set(labels)) <= metrics.MAX_MODELS + 1 and labels[-1] == "other"
    assert metrics.config_labels("x" * 200, "m", "weird", "float64") == {
        "provider": "other", "model": "other", "backend": "other", "precision": "other"}
    assert metrics.config_labels("openai", labels[0], None, None)["provider"] == "openai"
