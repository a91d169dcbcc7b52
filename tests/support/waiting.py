"""Waiting on what a test started, with generous bounds (never a speed assertion)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

BOUND = 120.0  # seconds: a bound on waiting, far above what any wait here needs


def wait_for(predicate: Callable[[], Any], what: str | Callable[[], str], bound: float = BOUND,
             interval: float = 0.05) -> Any:
    """Call `predicate` until it returns something true, and return that; fail after `bound` s
    saying `what` was awaited (a callable gives the words at that moment, e.g. a log's tail)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {bound:g} s waiting for {what() if callable(what) else what}")


def start_threads(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[threading.Thread]]:
    """Run each call in a daemon thread of its own; results[i] is its return value or the
    exception it raised (once the threads are joined)."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    return results, threads


def join(threads: list[threading.Thread], bound: float = BOUND) -> None:
    """Join every thread; fail if one is still running after `bound` s."""
    for t in threads:
        t.join(bound)
        assert not t.is_alive(), f"thread {t.name} still running after {bound:g} s"


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 60) -> None:
    """Send `sig`, wait up to `grace` s for the process to exit, then kill it."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
