"""gunicorn's gthread worker with a graceful stop that resets nothing it accepted.

The kernel completes a TCP handshake for gunicorn before any process calls accept(): a connection
waits in the listening socket's queue, shared by the master and every worker. On SIGTERM gunicorn's
gthread worker stops polling that socket but keeps it open until its in-flight requests are done,
so for that whole drain new clients still connect, send their request and queue up; when the last
process closes the socket the kernel resets every connection still queued (tcp_disconnect on each
child of a listener that stops listening). The drain is exactly when clients keep coming.

This worker, on SIGTERM: marks its runtime as stopping (/readyz answers 503 on any connection it
still serves), accepts whatever is queued at that moment and closes its copy of the listening
socket at once (when every process of the server has done so, new clients are refused and a proxy
tries its next server without a request lost), then finishes what it accepted and exits.
A worker retired alone (SIGHUP, SIGTTOU) does the same; the socket stays open in the others.
Only a handshake the kernel completes between the last process's final accept() and its close()
is still reset: a window of microseconds instead of the whole drain.

It also writes each answer's head and first body chunk in one send (gunicorn sends the head
alone first): a worker killed between the two would leave its proxy a 200 head with no body,
which the proxy has already passed on and cannot retry elsewhere. In one send, a replica that
dies leaves the proxy nothing (it retries on the next replica) or the whole answer (an answer
larger than the socket's buffer can still be cut off).

`worker_class = "kgserve.gunicorn_worker.DrainingWorker"` in gunicorn.conf.py. The master
imports this module while it reads its config, so, like kgserve.gunicorn_hooks, it imports no
part of the app (prometheus_client must not be imported before the metrics folder is set).
"""

from __future__ import annotations

import errno
from typing import Any

from gunicorn.http import wsgi
from gunicorn.workers.gthread import TConn, ThreadWorker


class DrainingWorker(ThreadWorker):
    """A gthread worker that gives up its listening sockets the moment it is told to stop."""

    _released = False

    def init_process(self) -> None:
        """Answer with OneWriteResponse in this process (gunicorn has no setting for it)."""
        wsgi.Response = OneWriteResponse
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: say so to /readyz, then begin gunicorn's graceful stop."""
        from .runtime import find  # loaded with the app by now; the master never imports it

        rt = find(getattr(self, "wsgi", None))
        if rt is not None:
            rt.stopping = True
        super().handle_exit(sig, frame)

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop polling the listeners; when stopping, also take their queue and close them."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive and not self._released:
            self._released = True
            for listener in self.sockets:
                self._accept_queued(listener)
                listener.close()

    def _accept_queued(self, listener: Any) -> None:
        """Accept every connection waiting in `listener`'s queue and hand each to a thread."""
        listener.setblocking(False)
        while True:
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:  # the client gave up while queued
                    continue
                return  # EAGAIN: the queue is empty
            self.nr_conns += 1
            client.setblocking(True)
            self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))


class _HeldHead:
    """Stands in for the socket while gunicorn writes a response's head: keeps the bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(data)


class OneWriteResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, its head sent in one write with the first body chunk."""

    def write(self, arg: bytes) -> None:
        if self.headers_sent:
            return super().write(arg)
        sock, held = self.sock, _HeldHead()
        self.sock = held
        try:
            super().write(arg)
        finally:
            self.sock = sock
        sock.sendall(b"".join(held.parts))
