"""The per-app runtime in app.extensions: database, model manager, listener, last known config."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from .configs import lastknown
from .configs.listener import ConfigListener
from .db import Database
from .providers.base import ProviderConfig, ProviderError
from .serve.manager import EmbeddingModelManager
from .serve.served import serving_builder

log = logging.getLogger(__name__)
EXT = "kgserve"


class Runtime:
    """Everything heavy an app holds; created without I/O, started lazily per process."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.db = Database(config["DATABASE_URL"], config["DB_CONNECT_TIMEOUT"],
                           config["DB_POOL_TIMEOUT"], config["DB_STATEMENT_TIMEOUT_MS"])
        self.manager = EmbeddingModelManager(serving_builder(config),
                                             retry_seconds=float(config["LOAD_RETRY_SECONDS"]))
        self.channel = config["NOTIFY_CHANNEL"]
        self.poll_interval = float(config["POLL_INTERVAL"])
        self.listener_enabled = bool(config["LISTENER"])
        self.instance = uuid.uuid4().hex
        self.last_row: dict[str, Any] | None = None
        self.last_row_file = Path(config.get("LAST_CONFIG_FILE")
                                  or lastknown.default_path(config["DATABASE_URL"]))
        self.listener: ConfigListener | None = None
        self._listener_pid: int | None = None
        self._lock = threading.Lock()
        # Set when gunicorn tells this worker to stop (kgserve.gunicorn_worker): /readyz says 503
        # while the worker finishes the requests it accepted.
        self.stopping = False

    def start_listener(self) -> None:
        """Start this process's listener once (again in a forked child, whose threads are gone)."""
        if not self.listener_enabled or self._listener_pid == os.getpid():
            return
        with self._lock:
            if self._listener_pid == os.getpid():
                return
            self.listener = ConfigListener(self.db.connect, self.follow, self.channel,
                                           self.poll_interval, self.instance)
            self.listener.start()
            self._listener_pid = os.getpid()

    def follow(self, row: dict[str, Any] | None, force: bool = False) -> None:
        """Serve the active `row` if this process serves another one (the listener's callback)."""
        if row is None:
            return
        self.remember(row)
        try:
            self.manager.follow(ProviderConfig.from_row(row), force=force)
        except ProviderError as exc:
            log.error("cannot serve config %s (%s %s): %s; the previous model keeps serving",
                      row["id"], row["provider"], row["model_name"], exc)

    def remember(self, row: dict[str, Any]) -> None:
        """Keep `row`, read from the database, as the last known active config (also on disk)."""
        if row != self.last_row:
            lastknown.save(self.last_row_file, row)
        self.last_row = row

    def last_known(self) -> dict[str, Any] | None:
        """The last known active row: this process's, else the one kept on disk (a worker started
        while the database is away), else None."""
        if self.last_row is None:
            self.last_row = lastknown.load(self.last_row_file)
        return self.last_row

    def close(self) -> None:
        """Stop the listener, close the pool and release the model."""
        if self.listener is not None and self._listener_pid == os.getpid():
            self.listener.stop()
        self.listener, self._listener_pid = None, None
        self.manager.reset()
        self.db.close()


def init_app(app: Flask) -> None:
    """Create the runtime and start the listener lazily, on the first request."""
    app.extensions[EXT] = Runtime(app.config)
    app.before_request(lambda: runtime().start_listener())


def find(app: Any) -> Runtime | None:
    """Return the runtime of `app`, or None when it is not a kgserve app (gunicorn's hooks)."""
    extensions = getattr(app, "extensions", None)
    return extensions.get(EXT) if isinstance(extensions, dict) else None


def runtime(app: Flask | None = None) -> Runtime:
    """Return the runtime of `app` (default: the current app)."""
    return (app or current_app).extensions[EXT]
