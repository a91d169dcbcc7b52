"""How many threads a worker's model uses: the cores here shared among the gunicorn workers.

Torch-free: gunicorn's post_fork hook sets a worker's share before the worker imports torch,
from the worker count gunicorn actually runs (`-w` included), and the CLI times backends with
the share a worker would get. More threads than a worker's share of the cores only adds
threads that wait for each other: a batch's model call would slow down, not speed up.
"""

from __future__ import annotations

import os

DEFAULT_WORKERS = 2
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def configured_workers() -> int:
    """The gunicorn workers KG_WORKERS asks for (default 2); ValueError saying what is wrong."""
    raw = os.environ.get("KG_WORKERS", "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"KG_WORKERS must be a whole number of workers, at least 1, not {raw!r}")
    return int(raw)


def per_worker(workers: int | None = None) -> int:
    """The model threads each of `workers` (default: KG_WORKERS) gets: cores ÷ workers, >= 1."""
    count = configured_workers() if workers is None else workers
    return max(1, cores() // max(1, count))


def set_worker_threads(workers: int) -> int:
    """Give this process (one of `workers`) its share, unless OMP_NUM_THREADS is set already;
    return the model threads it will use. Call before torch is imported."""
    share = os.environ.setdefault(_THREAD_VARIABLES[0], str(per_worker(workers)))
    for name in _THREAD_VARIABLES[1:]:
        os.environ.setdefault(name, share)
    return default_threads()


def default_threads() -> int:
    """This process's model threads: OMP_NUM_THREADS (a worker's share, or the operator's
    choice) up to the cores here; all cores outside gunicorn."""
    raw = os.environ.get(_THREAD_VARIABLES[0], "")
    if raw.isdigit() and int(raw) > 0:
        return min(int(raw), cores())
    return cores()
