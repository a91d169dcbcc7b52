"""gunicorn settings for `gunicorn kgserve:app` (run from the repository root).

Each worker imports kgserve (no I/O), then post_worker_init starts its config listener, which
loads the active model in the background and logs provider, model, dimensions and device.
Never preload the app: torch and thread pools do not survive fork. The hooks live in
kgserve.gunicorn_hooks; importing it builds nothing.
"""

import os

from kgserve.gunicorn_hooks import (  # noqa: F401 - gunicorn reads these names as its hooks
    child_exit,
    on_exit,
    on_starting,
    post_fork,
    post_worker_init,
    when_ready,
    worker_exit,
)
from kgserve.settings import check_environment
from kgserve.threads import configured_workers

check_environment()  # a KG_* value kgserve cannot use stops it here, naming the variable

bind = os.environ.get("KG_BIND", "127.0.0.1:8000")
# Batching needs many requests in flight per worker and the cores busy with the model, not with
# switching threads. Each worker's model gets cores // workers threads (set in post_fork, from
# the workers gunicorn runs, `-w` included), and many gthread threads: a thread waits while its
# text sits in a batch, so threads per worker bound how large a batch can grow. Several workers
# with few model threads each keep the cores busy: one worker's HTTP work overlaps another's
# model call.
workers = configured_workers()  # KG_WORKERS, default 2
# gunicorn's gthread worker, except that on SIGTERM it stops taking connections at once instead
# of leaving them queued to be reset when it exits (kgserve/gunicorn_worker.py).
worker_class = "kgserve.gunicorn_worker.DrainingWorker"
threads = int(os.environ.get("KG_THREADS", "32"))
preload_app = False
timeout = 120           # a worker silent this long is restarted (model loads run in threads)
graceful_timeout = 30   # in-flight requests finish on shutdown/restart
keepalive = 5
max_requests = 0        # never recycle workers: each one holds a loaded model
control_socket_disable = True  # several servers may share a machine (tests, make run)
accesslog = os.environ.get("KG_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("KG_LOG_LEVEL", "info")

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_probes": {"()": "kgserve.gunicorn_hooks.NoProbes"}},
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
