"""Steady load for stop and restart tests: N clients posting embeddings, each outcome recorded."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.support.waiting import join


@dataclass
class Outcome:
    """One request: when it started and ended (monotonic), and how it went."""

    started: float
    ended: float
    result: str  # "ok", "refused" (no connection: the server never accepted it), or "failed: ..."

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def embed_once(base: str, text: str, timeout: float = 120) -> str:
    """POST one text on a fresh connection: "ok", "refused" when no connection was made, else
    "failed: <what happened>" (a reset, an early close, a status other than 200)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return "refused"
        try:
            conn.request("POST", "/v1/embeddings", json.dumps({"input": text}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"failed: {exc!r}"
        if resp.status != 200:
            return f"failed: {resp.status} {data[:300]!r}"
        return "ok"
    finally:
        conn.close()


class Load:
    """`clients` threads posting unique texts to `base` until stop(); a context manager."""

    def __init__(self, base: str, clients: int = 16) -> None:
        self.base, self.clients = base, clients
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        join(self._threads)

    def _client(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            started = time.monotonic()
            result = embed_once(self.base, f"client {i} asks for text number {n} at {started}")
            with self._lock:
                self.outcomes.append(Outcome(started, time.monotonic(), result))
            if result == "refused":
                time.sleep(0.05)  # nothing listens: do not spin

    def count(self, result: str, since: float = 0.0) -> int:
        """How many requests started after `since` ended with `result`."""
        with self._lock:
            return sum(o.result == result and o.started >= since for o in self.outcomes)

    def failures(self) -> list[str]:
        with self._lock:
            return [o.result for o in self.outcomes if o.result.startswith("failed")]

    def window(self, start: float, end: float) -> list[Outcome]:
        """The requests that started in [start, end)."""
        with self._lock:
            return [o for o in self.outcomes if start <= o.started < end]


def p99(outcomes: list[Outcome]) -> float:
    """The 99th percentile latency of the successful `outcomes`, in seconds (0 when none)."""
    times = sorted(o.seconds for o in outcomes if o.result == "ok")
    return times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0.0
