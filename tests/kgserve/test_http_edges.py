"""HTTP at the edges, under real gunicorn: oversized bodies, gunicorn's own answers, methods."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.gunicorn

LIMIT = 8 * 1024 * 1024  # KG_MAX_CONTENT_LENGTH's default, which the server runs with


def connect(base: str) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def oversized() -> bytes:
    return json.dumps({"input": "x" * (LIMIT + 1024)}).encode()


def test_an_oversized_body_gets_its_413_with_urllib(gunicorn_server):
    req = urllib.request.Request(gunicorn_server.base + "/v1/embeddings", data=oversized(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:  # not a broken pipe
        urllib.request.urlopen(req, timeout=60)
    assert info.value.code == 413
    assert json.loads(info.value.read())["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_gets_a_413_and_the_connection_stays_usable(gunicorn_server, chunked):
    conn = connect(gunicorn_server.base)
    body = oversized()
    if chunked:  # no Content-Length: the limit is found while reading
        pieces = (body[k:k + 65536] for k in range(0, len(body), 65536))
        conn.request("POST", "/v1/embeddings", body=pieces, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
    else:
        conn.request("POST", "/v1/embeddings", body=body,
                     headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    assert resp.status == 413, answer
    assert answer["error"]["code"] == "request_too_large"
    # The body was read and discarded, so the same connection serves the next request.
    conn.request("GET", "/healthz")
    again = conn.getresponse()
    assert again.status == 200
    again.read()
    conn.close()


def raw(base: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a new connection; return gunicorn's status, headers and body."""
    import socket

    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # request line too long
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Many-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),  # too many headers
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"NOT A REQUEST\r\n\r\n", 400),
])
def test_gunicorns_own_errors_are_json(gunicorn_server, request_bytes, status):
    code, headers, body = raw(gunicorn_server.base, request_bytes)
    assert code == status
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert answer["success"] is False and answer["message"]
