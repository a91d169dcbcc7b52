"""No work for clients that left: a request's deadline, and noticing a client that hung up.

A request waits for the batching queue at most until its deadline (KG_REQUEST_TIMEOUT, or the
client's `x-request-timeout` header); then it is cancelled, the worker drops it before computing
what is left of it, and the client gets 503 + Retry-After. A client whose connection closed
while waiting is dropped the same way. Both are counted in kgserve_requests_dropped_total.
"""

from __future__ import annotations

import math
import select
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from .. import redact
from ..providers.base import ProviderError

POLL_SECONDS = 0.1  # how often a waiting request looks at its client's connection
MAX_TIMEOUT = 3600.0


class RequestTimeout(ProviderError):
    """The request was still waiting for the model at its deadline; retry after `retry_after`."""

    code = "request_timeout"

    def __init__(self, seconds: float, retry_after: int) -> None:
        super().__init__(f"the request was not done within its deadline of {seconds:g} s "
                         f"(KG_REQUEST_TIMEOUT or x-request-timeout); it was dropped, retry later")
        self.retry_after = retry_after


class ClientGone(ProviderError):
    """The client closed its connection while its request waited; nobody reads the answer."""

    code = "client_closed_request"


def parse_timeout(header: str | None, default: float) -> float:
    """The request's timeout in seconds: the header's when given, else `default`; ValueError
    (with a message) for anything but a number in (0, 3600]."""
    if header is None or not header.strip():
        return float(default)
    try:
        value = float(header)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:  # also refuses nan and inf
        raise ValueError(f"x-request-timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
                         f"not {redact.echo(header)}")
    return value


def connection_closed(environ: dict[str, Any]) -> Callable[[], bool]:
    """A check of whether the client of this WSGI request has closed its connection."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def closed() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, ValueError):  # no data yet; a TLS socket cannot peek
            return False
        except OSError:  # reset, or closed under us
            return True

    return closed


@dataclass(frozen=True)
class Waiting:
    """How long one request may wait, from when, and how to tell that its client left."""

    seconds: float
    started: float = field(default_factory=time.perf_counter)
    closed: Callable[[], bool] = lambda: False


def wait(future: Future, waiting: Waiting, retry_after: Callable[[], int]) -> Any:
    """The future's result, unless the deadline passes or the client leaves first: then cancel
    it (the queue drops it before computing what is left of it) and raise."""
    deadline = waiting.started + waiting.seconds
    while True:
        remaining = deadline - time.perf_counter()
        try:
            return future.result(timeout=max(0.0, min(POLL_SECONDS, remaining)))
        except FutureTimeout:
            pass
        if remaining <= POLL_SECONDS:
            if not _drop(future, "deadline"):
                return future.result()  # finished just now
            raise RequestTimeout(waiting.seconds, retry_after()) from None
        if waiting.closed():
            if not _drop(future, "client_gone"):
                return future.result()
            raise ClientGone("the client closed the connection") from None


def _drop(future: Future, reason: str) -> bool:
    # Imported here: gunicorn's arbiter reads MAX_TIMEOUT (kgserve.settings) before it sets up
    # prometheus_client's multi-process folder, which must come before its first import.
    from .. import metrics

    if not future.cancel():
        return False
    metrics.REQUESTS_DROPPED.labels(reason).inc()
    return True
