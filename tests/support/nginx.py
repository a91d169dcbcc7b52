"""deploy/nginx.conf run by Debian's nginx, changed only in addresses and paths."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.kgs import REPO, call, free_port
from tests.support.waiting import stop_process, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The upstream's replicas in deploy/nginx.conf: `server 127.0.0.1:8000 max_fails=...;`
REPLICA = re.compile(r"^(\s*)server 127\.0\.0\.1:80\d\d\b([^;]*);\n", re.M)


def nginx_conf(upstreams: list[str], port: int, folder: Path) -> str:
    """deploy/nginx.conf with `upstreams` (host:port) as its replicas, listening on `port`,
    logs and pid file in `folder`."""
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    replicas = list(REPLICA.finditer(conf))
    assert replicas, "deploy/nginx.conf lists no replica on 127.0.0.1:80xx"
    indent, params = replicas[0].group(1), replicas[0].group(2)
    lines = "".join(f"{indent}server {address}{params};\n" for address in upstreams)
    conf = conf[:replicas[0].start()] + lines + conf[replicas[-1].end():]
    for old, new in [("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};"),
                     ("/run/nginx-kgserve.pid", str(folder / "nginx.pid")),
                     ("/var/log/nginx/kgserve.error.log", str(folder / "error.log")),
                     ("/var/log/nginx/kgserve.access.log", str(folder / "access.log"))]:
        assert old in conf, old
        conf = conf.replace(old, new)
    return conf


@contextmanager
def running_nginx(upstreams: list[str], folder: Path) -> Iterator[str]:
    """Run deploy/nginx.conf in front of `upstreams`; yield its base URL; stop it."""
    assert shutil.which(NGINX), "nginx is missing: `make install` installs Debian's nginx-light"
    port = free_port()
    (folder / "nginx.conf").write_text(nginx_conf(upstreams, port, folder))
    (folder / "logs").mkdir(exist_ok=True)
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"),
                             "-e", str(folder / "error.log"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, proc.stdout.read()
        try:
            return call(base, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, "nginx to answer", 60, interval=0.2)
        yield base
    finally:
        stop_process(proc)


class CrashingReplica:
    """A loopback server standing in for a replica that dies mid-request: it answers GETs
    (so health probes pass) and resets every POST after reading its head. `.posts` lists the
    paths it was sent; `.address` is host:port. A context manager."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CrashingReplica:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._thread.join(10)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                method, path = head.split(b" ", 2)[:2] if head.count(b" ") >= 2 else (b"", b"")
                if method == b"POST":
                    self.posts.append(path.decode())
                    # close with a reset, as a killed process's socket does
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue
                body = b'{"status": "ok"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
