"""gunicorn settings for `gunicorn kgserve:app` (run from the repository root).

Each worker imports kgserve (no I/O), then post_worker_init starts its config listener, which
loads the active model in the background and logs provider, model, dimensions and device.
Never preload the app: torch and thread pools do not survive fork.
"""

import ctypes
import glob
import os
import shutil
import tempfile
import threading
import time

bind = os.environ.get("KG_BIND", "127.0.0.1:8000")
# Batching (kgserve.batching) needs many requests in flight per worker and the cores busy with
# the model, not with switching threads. So: each worker runs torch with cores // workers
# intra-op threads (more would oversubscribe the cores and slow every batch down; set before
# any worker imports torch), and has many gthread threads, because a thread waits while its
# text sits in a batch: threads per worker bound how large a batch can grow. Two workers with one
# torch thread each beat one worker with two on a 2-core machine: one worker's HTTP work overlaps
# the other's model call, and a single-threaded forward pass wastes nothing on synchronisation.
workers = int(os.environ.get("KG_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("KG_THREADS", "32"))
_TORCH_THREADS = str(max(1, len(os.sched_getaffinity(0)) // workers))
os.environ.setdefault("OMP_NUM_THREADS", _TORCH_THREADS)
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])


def _trim_memory_forever(seconds: float) -> None:
    """Hand the free heap pages back to the OS every `seconds` (a worker thread).

    Batches allocate tensors of a new shape each time; glibc keeps the freed blocks, fragmented,
    and a worker's resident memory crept up ~16% over 20 000 requests. malloc_trim(0) returns
    whole free pages from every arena. Cheaper than a fixed mmap threshold, which made every
    large tensor an mmap/munmap pair and cost a third of the throughput.
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return
    while True:
        time.sleep(seconds)
        trim(0)

# prometheus_client's multi-process mode: each worker writes its metrics to files in this folder
# and /metrics adds them up (kgserve.metrics); child_exit drops a dead worker's live gauges.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kgserve-metrics-")
preload_app = False
timeout = 120           # a worker silent this long is restarted (model loads run in threads)
graceful_timeout = 30   # in-flight requests finish on shutdown/restart
keepalive = 5
max_requests = 0        # never recycle workers: each one holds a loaded model
control_socket_disable = True  # several servers may share a machine (tests, make run)
accesslog = os.environ.get("KG_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("KG_LOG_LEVEL", "info")

# `make run` (kgserve.devserver) polls /readyz until the model is loaded; its probes say who
# they are in the User-Agent and are left out of the access log.
PROBE_AGENT = "kgserve-devserver-probe"


class _NoProbes:
    """Access-log filter: drop the lines of make run's readiness probes."""

    def filter(self, record) -> bool:
        args = record.args if isinstance(record.args, dict) else {}
        return args.get("a") != PROBE_AGENT


logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_probes": {"()": _NoProbes}},
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                    "datefmt": "%Y-%m-%d %H:%M:%S %z"},
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic",
                    "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access",
                   "stream": "ext://sys.stdout", "filters": ["no_probes"]},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "kgserve": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
    "root": {"level": "WARNING", "handlers": ["console"]},
}


def _json_errors() -> None:
    """Make gunicorn's own error answers (bad request line, 414, 431: written before the app sees
    the request) JSON like every other answer. gunicorn has no setting for it; its one writer,
    gunicorn.util.write_error(sock, status, reason, message), is replaced in each worker."""
    from gunicorn import util

    from kgserve.errors import gunicorn_error

    def write_error(sock, status_int, reason, mesg):
        util.write_nonblock(sock, gunicorn_error(status_int, reason, mesg))

    util.write_error = write_error


def when_ready(server):
    """Say where we listen and how the server is secured (never the secrets themselves)."""
    admin = "enabled" if os.environ.get("KG_ADMIN_TOKEN") else "disabled (set KG_ADMIN_TOKEN)"
    api = "required" if os.environ.get("KG_API_TOKEN") else "not required"
    key = "set" if os.environ.get("OPENAI_API_KEY") else "not set"
    server.log.info("kgserve listening on %s; admin API %s; /v1 token %s; OPENAI_API_KEY %s",
                    ", ".join(str(b) for b in server.cfg.bind), admin, api, key)


def post_worker_init(worker):
    """Start this worker's config listener; it loads the active model in the background."""
    extensions = getattr(worker.wsgi, "extensions", {})
    if "kgserve" in extensions:
        worker.log.info("worker %s: loading the active embedding config", os.getpid())
        extensions["kgserve"].start_listener()


def post_fork(server, worker):
    """JSON for gunicorn's own errors; start the worker's memory trimmer (KG_MALLOC_TRIM_SECONDS,
    0 to disable)."""
    _json_errors()
    seconds = float(os.environ.get("KG_MALLOC_TRIM_SECONDS", "5"))
    if seconds > 0:
        threading.Thread(target=_trim_memory_forever, args=(seconds,), name="kgserve-trim",
                         daemon=True).start()


def on_starting(server):
    """Start with empty metrics: files of an earlier run would be added to this one's."""
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    """Tell prometheus_client the worker is gone (its live gauges stop counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder if this server made it."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def worker_exit(server, worker):
    """Stop the listener, close the pool and release the model."""
    if "kgserve" in getattr(worker.wsgi, "extensions", {}):
        from kgserve import shutdown

        shutdown(worker.wsgi)
