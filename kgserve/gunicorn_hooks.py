"""gunicorn's server hooks for kgserve; gunicorn.conf.py names them and holds the settings.

gunicorn imports this in the arbiter while it reads its config, so nothing heavy happens at
import: no app, no torch, and no prometheus_client, whose multi-process mode must see
PROMETHEUS_MULTIPROC_DIR before it is first imported.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from .threads import cores, set_worker_threads

# `make run` (kgserve.devserver) polls /readyz until the model is loaded; its probes say who
# they are in the User-Agent and are left out of the access log.
PROBE_AGENT = "kgserve-devserver-probe"


class NoProbes(logging.Filter):
    """Access-log filter: drop the lines of `make run`'s readiness probes."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, dict) else {}
        return args.get("a") != PROBE_AGENT


class _MetricsFolder:
    """prometheus_client's multi-process folder: each worker writes its metrics to files there
    and /metrics adds them up (kgserve.metrics). PROMETHEUS_MULTIPROC_DIR when set, else a
    folder made for this server and removed when it exits."""

    made: str | None = None


def on_starting(server: Any) -> None:
    """Give the workers a metrics folder, empty: files of an earlier run would be added up."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = _MetricsFolder.made = tempfile.mkdtemp(prefix="kgserve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    for stale in glob.glob(os.path.join(folder, "*.db")):
        os.remove(stale)


def when_ready(server: Any) -> None:
    """Say where we listen and how the server is secured (never the secrets themselves)."""
    admin = "enabled" if os.environ.get("KG_ADMIN_TOKEN") else "disabled (set KG_ADMIN_TOKEN)"
    api = "required" if os.environ.get("KG_API_TOKEN") else "not required"
    key = "set" if os.environ.get("OPENAI_API_KEY") else "not set"
    server.log.info("kgserve listening on %s; admin API %s; /v1 token %s; OPENAI_API_KEY %s",
                    ", ".join(str(b) for b in server.cfg.bind), admin, api, key)


def post_fork(server: Any, worker: Any) -> None:
    """In a new worker, before it loads the app: its share of the cores for the model (from the
    workers gunicorn runs, `-w` included), JSON for gunicorn's own errors, the memory trimmer
    (every KG_MALLOC_TRIM_SECONDS, 0 to disable)."""
    threads = set_worker_threads(server.num_workers)
    worker.log.info("worker %s: %d model threads (cores %d, workers %d)", os.getpid(), threads,
                    cores(), server.num_workers)
    use_json_errors()
    seconds = float(os.environ.get("KG_MALLOC_TRIM_SECONDS", "5"))
    if seconds > 0:
        threading.Thread(target=_trim_memory_forever, args=(seconds,), name="kgserve-trim",
                         daemon=True).start()


def post_worker_init(worker: Any) -> None:
    """Start this worker's config listener; it loads the active model in the background."""
    from .runtime import find

    rt = find(worker.wsgi)
    if rt is not None:
        worker.log.info("worker %s: loading the active embedding config", os.getpid())
        rt.start_listener()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the listener, close the pool and release the model."""
    from .runtime import find

    rt = find(getattr(worker, "wsgi", None))
    if rt is not None:
        rt.close()


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client the worker is gone (its live gauges stop counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics folder if this server made it."""
    if _MetricsFolder.made:
        shutil.rmtree(_MetricsFolder.made, ignore_errors=True)


def use_json_errors() -> None:
    """Make gunicorn's own error answers (bad request line, 414, 431: written before the app
    sees the request) JSON like every other answer. gunicorn has no setting for it; its one
    writer, gunicorn.util.write_error(sock, status, reason, message), is replaced."""
    from gunicorn import util

    from .errors import gunicorn_error

    def write_error(sock, status_int, reason, mesg):
        util.write_nonblock(sock, gunicorn_error(status_int, reason, mesg))

    util.write_error = write_error


def _trim_memory_forever(seconds: float) -> None:
    """Hand the free heap pages back to the OS every `seconds` (a worker thread).

    Batches allocate tensors of a new shape each time; glibc keeps the freed blocks, fragmented,
    so a worker's resident memory creeps up. malloc_trim(0) returns whole free pages from every
    arena; it is cheaper than a fixed mmap threshold, which would make every large tensor an
    mmap/munmap pair.
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return
    while True:
        time.sleep(seconds)
        trim(0)
