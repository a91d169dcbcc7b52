"""/metrics, the timing headers, 429 backpressure and bad-input isolation through the HTTP API."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kgserve import shutdown
from kgserve.runtime import runtime
from tests.kgserve.conftest import MINILM_BODY, make_app


def scrape(client) -> dict[tuple[str, tuple], float]:
    """GET /metrics and return {(sample name, sorted labels): value}."""
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
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


def post_in_threads(app, bodies: list) -> tuple[list, list[threading.Thread]]:
    """POST each body to /v1/embeddings from its own thread (own test client)."""
    results: list = [None] * len(bodies)

    def call(i: int) -> None:
        body = bodies[i]
        kw = {"data": body, "content_type": "application/json"} if isinstance(body, str) \
            else {"json": body}
        results[i] = app.test_client().post("/v1/embeddings", **kw)

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(bodies))]
    for t in threads:
        t.start()
    return results, threads


def wait_queued(queue, n: int) -> None:
    deadline = time.monotonic() + 60
    while queue.queued != n:
        assert time.monotonic() < deadline, f"queue holds {queue.queued}, not {n}"
        time.sleep(0.005)


def join(threads) -> None:
    for t in threads:
        t.join(120)
        assert not t.is_alive()


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


def test_a_full_queue_answers_429_with_retry_after(small_queue_app):
    queue = runtime(small_queue_app).manager.current().queue
    with queue.paused():
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


def test_a_bad_input_fails_only_its_request(client, minilm, app):
    queue = runtime(app).manager.current().queue
    good = {"input": ["a good query", "another"]}
    bad = '{"input": ["fine", "broken \\ud800 text"]}'  # a lone surrogate: valid JSON, bad text
    with queue.paused():
        results, threads = post_in_threads(app, [good, bad, {"input": "third"}])
        wait_queued(queue, 5)
    join(threads)
    assert results[1].status_code == 400
    assert results[1].get_json()["error"]["code"] == "invalid_request"
    assert "input[1]" in results[1].get_json()["error"]["message"]
    assert [r.status_code for r in (results[0], results[2])] == [200, 200]
    solo = client.post("/v1/embeddings", json=good).get_json()
    assert results[0].get_json()["data"][1]["embedding"] == pytest.approx(
        solo["data"][1]["embedding"], abs=1e-5)
