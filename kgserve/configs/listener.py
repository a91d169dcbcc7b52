"""The LISTEN/NOTIFY listener: a thread per worker that follows the active config."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ..db import DatabaseUnavailable
from . import store

log = logging.getLogger(__name__)

OnChange = Callable[[dict[str, Any] | None, bool], None]


class ConfigListener(threading.Thread):
    """LISTEN on the config channel; on a notification or every `interval` s, check the active row.

    Reconnects with backoff when the database goes away, and checks again on reconnect.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], on_change: OnChange,
                 channel: str = store.CHANNEL, interval: float = 3.0, origin: str = "") -> None:
        super().__init__(name="kgserve-config-listener", daemon=True)
        self._connect, self._on_change = connect, on_change
        self.channel, self.interval, self.origin = channel, interval, origin
        self._stop_event = threading.Event()
        self.connected = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it a little."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        backoff, down, missing = 0.5, False, False
        while not self._stop_event.is_set():
            try:
                conn = self._connect()
            except (DatabaseUnavailable, psycopg.Error, OSError) as exc:
                if not down:
                    log.warning("config listener: database unreachable (%s); retrying",
                                exc.__class__.__name__)
                down = True
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if down:
                log.info("config listener: database reachable again")
            backoff, down = 0.5, False
            try:
                with conn:
                    self._listen(conn)
            except psycopg.errors.UndefinedTable:
                if not missing:
                    log.warning("config listener: no kg_api.embedding_config table yet "
                                "(kgmigrate up); checking again every %g s", self.interval)
                missing = True
                self._stop_event.wait(self.interval)
            except psycopg.OperationalError as exc:
                log.warning("config listener: lost the database connection (%s); reconnecting",
                            " ".join(str(exc).split())[:200])
                down = True
            except Exception:
                log.exception("config listener failed; restarting it")
                self._stop_event.wait(1.0)
            finally:
                self.connected.clear()

    def _listen(self, conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        self.connected.set()
        self._check(conn, force=False)  # catch up on whatever happened while we were away
        next_poll = time.monotonic() + self.interval
        while not self._stop_event.is_set():
            force = notified = False
            # Short waits so stop() is prompt; the periodic check runs every `interval` s.
            for note in conn.notifies(timeout=min(self.interval, 0.5), stop_after=1):
                notified = True
                force = self._is_foreign_reload(note.payload)
            if self._stop_event.is_set():
                return
            if notified or time.monotonic() >= next_poll:
                self._check(conn, force)
                next_poll = time.monotonic() + self.interval

    def _is_foreign_reload(self, payload: str) -> bool:
        try:
            data = json.loads(payload)
        except ValueError:
            return False
        return bool(isinstance(data, dict) and data.get("reload")
                    and data.get("origin") != self.origin)

    def _check(self, conn: psycopg.Connection, force: bool) -> None:
        self._on_change(store.get_active(conn), force)
