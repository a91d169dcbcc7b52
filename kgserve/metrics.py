"""Prometheus metrics, multi-process safe under gunicorn (PROMETHEUS_MULTIPROC_DIR), and /metrics."""

from __future__ import annotations

import os
import threading
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .providers.options import BACKENDS, PRECISIONS, PROVIDERS

# Every label value comes from a closed set, so that no client (and no run of configs) adds
# series without bound: endpoints are route patterns ("<unmatched>" for any other path), methods
# outside HTTP's standard ones and statuses outside 100-599 fold into "other", providers,
# backends and precisions are providers.options' lists, and a process labels the first
# MAX_MODELS model names it loads, the later ones "other".
OTHER = "other"
UNMATCHED = "<unmatched>"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT",
                     "TRACE"))
MAX_MODELS = 16

# Module-level on purpose: prometheus_client keeps one registry per process (and one set of
# mmap files per worker in multi-process mode); a second create_app() must reuse these objects.
REQUESTS = Counter("kgserve_http_requests_total", "HTTP requests answered, by endpoint and status",
                   ["endpoint", "method", "status"])
FAILURES = Counter("kgserve_http_request_failures_total",
                   "HTTP requests answered with a status of 400 or more", ["endpoint", "status"])
REQUEST_SECONDS = Histogram("kgserve_http_request_duration_seconds",
                            "Time from the start of a request to its response", ["endpoint"],
                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
QUEUE_SIZE = Gauge("kgserve_batch_queue_texts", "Texts waiting in the batching queue",
                   multiprocess_mode="livesum")
QUEUE_REJECTED = Counter("kgserve_batch_queue_rejected_total",
                         "Requests refused with 429 because the batching queue was full")
BATCH_SIZE = Histogram("kgserve_batch_size", "Texts per model call",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
BATCH_TOKENS = Histogram("kgserve_batch_padded_tokens",
                         "Padded tokens per model call (longest text x texts)",
                         buckets=(16, 64, 256, 1024, 2048, 4096, 8192, 16384, 65536))
QUEUE_WAIT = Histogram("kgserve_queue_wait_seconds",
                       "Time a request waited before its first model call",
                       buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10))
INFERENCE = Histogram("kgserve_inference_seconds", "Duration of one model (or upstream API) call",
                      buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30))
MODEL_LOAD = Histogram("kgserve_model_load_seconds", "Time to build, load and warm a provider",
                       ["provider", "model"], buckets=(.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300))

REQUESTS_DROPPED = Counter("kgserve_requests_dropped_total",
                           "Requests dropped from the batching queue before their model work: "
                           "past their deadline, or their client closed the connection",
                           ["reason"])
CACHE_HITS = Counter("kgserve_cache_hits_total", "Inputs answered from the embedding cache")
CACHE_MISSES = Counter("kgserve_cache_misses_total", "Inputs the embedding cache did not hold")
CACHE_EVICTIONS = Counter("kgserve_cache_evictions_total",
                          "Embedding cache entries evicted to stay within KG_CACHE_MB")
CACHE_BYTES = Gauge("kgserve_cache_bytes", "Bytes held by the embedding cache",
                    multiprocess_mode="livesum")

ACCURACY_MIN = Gauge("kgserve_accuracy_min_cosine",
                     "Accuracy guard: lowest cosine to torch float32 over the probe set",
                     ["model", "backend", "precision"], multiprocess_mode="livemostrecent")
ACCURACY_MEAN = Gauge("kgserve_accuracy_mean_cosine",
                      "Accuracy guard: mean cosine to torch float32 over the probe set",
                      ["model", "backend", "precision"], multiprocess_mode="livemostrecent")
GUARD_REFUSALS = Counter("kgserve_accuracy_guard_refusals_total",
                         "Configs the accuracy guard refused", ["model", "backend", "precision"])

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Expose every metric in Prometheus' text format (all workers in multi-process mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    # content_type, not mimetype: Flask would add a second "; charset=utf-8" to the latter
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _start() -> None:
    g.kg_started = time.perf_counter()


def method_label(method: str) -> str:
    """The `method` label: a standard HTTP method, else "other"."""
    return method if method in METHODS else OTHER


def status_label(status: int) -> str:
    """The `status` label: an HTTP status code, else "other"."""
    return str(status) if 100 <= status <= 599 else OTHER


def endpoint_label() -> str:
    """The `endpoint` label of this request: its route's pattern, never the path itself."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


class _FirstSeen:
    """Up to `limit` distinct values, kept in the order first seen; the rest are "other"."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen, self.lock = limit, set(), threading.Lock()

    def __call__(self, value: str) -> str:
        with self.lock:
            if value not in self.seen and len(self.seen) < self.limit:
                self.seen.add(value)
            return value if value in self.seen else OTHER


model_label = _FirstSeen(MAX_MODELS)


def config_labels(provider: str | None, model: str, backend: str | None,
                  precision: str | None) -> dict[str, str]:
    """The labels a metric about one config may carry, each from its closed set."""
    return {"provider": provider if provider in PROVIDERS else OTHER, "model": model_label(model),
            "backend": backend if backend in BACKENDS else OTHER,
            "precision": precision if precision in PRECISIONS else OTHER}


def _finish(response: Response) -> Response:
    endpoint = endpoint_label()
    status = status_label(response.status_code)
    REQUESTS.labels(endpoint, method_label(request.method), status).inc()
    if response.status_code >= 400:
        FAILURES.labels(endpoint, status).inc()
    started = g.get("kg_started")
    if started is not None:
        REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
    return response


def observe_load(provider: str, model: str, seconds: float | None) -> None:
    """Record how long a provider took to load."""
    if seconds is not None:
        labels = config_labels(provider, model, None, None)
        MODEL_LOAD.labels(labels["provider"], labels["model"]).observe(seconds)


def observe_accuracy(model: str, backend: str, precision: str, guard) -> None:
    """Record the accuracy guard's figures of a loaded onnx/openvino provider."""
    if guard is not None:
        labels = _guard_labels(model, backend, precision)
        ACCURACY_MIN.labels(*labels).set(guard.min_cosine)
        ACCURACY_MEAN.labels(*labels).set(guard.mean_cosine)


def count_guard_refusal(model: str, backend: str, precision: str) -> None:
    """Count a config the accuracy guard refused."""
    GUARD_REFUSALS.labels(*_guard_labels(model, backend, precision)).inc()


def _guard_labels(model: str, backend: str, precision: str) -> tuple[str, str, str]:
    labels = config_labels(None, model, backend, precision)
    return labels["model"], labels["backend"], labels["precision"]


def init_app(app: Flask) -> None:
    """Register /metrics and the per-request counters."""
    app.register_blueprint(bp)
    app.before_request(_start)
    app.after_request(_finish)
