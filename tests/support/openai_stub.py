"""A loopback stand-in for the OpenAI embeddings API: a real HTTP server in a thread."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

API_KEY = "sk-stub-0123456789abcdef"
MAX_INPUTS = 2048
MAX_TOKENS_PER_INPUT = 8192
MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
          "text-embedding-ada-002": 1536}
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Count a text's tokens the stub's way: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def stub_vector(model: str, text: str, dimensions: int | None = None) -> np.ndarray:
    """Return the stub's deterministic unit vector for `text` (truncated, re-normalised)."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(MODELS[model])
    vec = vec[:dimensions] if dimensions else vec
    return (vec / np.linalg.norm(vec)).astype(np.float32)


class OpenAIStub:
    """Serve POST /v1/embeddings and GET /v1/models on 127.0.0.1; record every request."""

    def __init__(self, api_key: str = API_KEY, basic_auth: str | None = None) -> None:
        self.api_key = api_key
        # "user:password": also accept HTTP Basic auth, as an OpenAI-compatible server behind a
        # proxy that checks a password does (clients put it in the base URL)
        self.basic_auth = basic_auth
        self.requests: list[dict[str, Any]] = []
        self._failures: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: list[socket.socket] = []
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The URL to give the SDK (OPENAI_BASE_URL), ending in /v1."""
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self) -> OpenAIStub:
        """Start serving on a free port."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, and close the connections clients keep alive: gone means unreachable."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> OpenAIStub:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget recorded requests and pending failures."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    def fail_next(self, count: int, status: int = 429, retry_after: float = 0.01) -> None:
        """Answer the next `count` requests with `status` (and a short Retry-After)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def embedding_requests(self) -> list[dict[str, Any]]:
        """Return the JSON bodies of the POST /v1/embeddings requests received."""
        with self._lock:
            return [r["body"] for r in self.requests if r["path"] == "/v1/embeddings"]

    def _record(self, entry: dict[str, Any]) -> tuple[int, float] | None:
        """Record a request; return the injected failure it must get, if any."""
        with self._lock:
            self.requests.append(entry)
            return self._failures.pop(0) if self._failures else None


def _error(status: int, message: str, code: str | None, kind: str = "invalid_request_error",
           param: str | None = None) -> tuple[int, dict]:
    """Build an OpenAI-shaped error answer."""
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _embeddings(body: Any) -> tuple[int, dict]:
    """Answer a POST /v1/embeddings body the way the API does."""
    if not isinstance(body, dict):
        return _error(400, "We could not parse the JSON body of your request.", None)
    model, texts = body.get("model"), body.get("input")
    if model not in MODELS:
        return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                      "model_not_found")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return _error(400, "'$.input' is invalid. Please check the API reference.", None, param="input")
    if len(texts) > MAX_INPUTS:
        return _error(400, f"'$.input' is too long: at most {MAX_INPUTS} inputs per request.",
                      None, param="input")
    if any(t == "" for t in texts):
        return _error(400, "'$.input' is invalid: empty strings are not allowed.", None, param="input")
    tokens = [count_tokens(t) for t in texts]
    if max(tokens) > MAX_TOKENS_PER_INPUT:
        return _error(400, f"This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens.",
                      None, param="input")
    dims = body.get("dimensions")
    if dims is not None:
        if not model.startswith("text-embedding-3"):
            return _error(400, "This model does not support specifying dimensions.", None,
                          param="dimensions")
        if not isinstance(dims, int) or not 1 <= dims <= MODELS[model]:
            return _error(400, f"Invalid value for 'dimensions' = {dims}.", None,
                          param="dimensions")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return _error(400, f"Invalid value for 'encoding_format' = {fmt}.", None,
                      param="encoding_format")
    data = []
    for i, text in enumerate(texts):
        vec = stub_vector(model, text, dims)
        value = (base64.b64encode(vec.astype("<f4").tobytes()).decode() if fmt == "base64"
                 else vec.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    return 200, {"object": "list", "data": data, "model": model,
                 "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}}


def _model(name: str) -> dict:
    """Describe one model the way GET /v1/models does."""
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "system"}


def _handler_for(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    """Make the request handler class bound to `stub`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with stub._lock:
                stub._connections.append(self.connection)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("latin-1")
            auth = self.headers.get("Authorization", "")
            failure = stub._record({"method": method, "path": self.path, "body": body,
                                    "authorization": auth})
            if failure:
                status, wait = failure
                kind = "rate_limit_exceeded" if status == 429 else "server_error"
                self._answer(*_error(status, f"injected failure {status}", kind, kind),
                             {"retry-after-ms": str(int(wait * 1000))})
                return
            basic = stub.basic_auth and "Basic " + base64.b64encode(stub.basic_auth.encode()
                                                                   ).decode()
            if auth != f"Bearer {stub.api_key}" and auth != basic:
                sent = auth.removeprefix("Bearer ")
                masked = f"{sent[:7]}{'*' * 8}{sent[-4:]}"  # the real API echoes a masked key
                self._answer(*_error(401, f"Incorrect API key provided: {masked}. You can find "
                                     "your API key at https://platform.openai.com/account/api-keys.",
                                     "invalid_api_key"))
                return
            if method == "POST" and self.path == "/v1/embeddings":
                self._answer(*_embeddings(body))
            elif method == "GET" and self.path == "/v1/models":
                self._answer(200, {"object": "list", "data": [_model(m) for m in MODELS]})
            elif method == "GET" and self.path.startswith("/v1/models/"):
                name = self.path.removeprefix("/v1/models/")
                if name in MODELS:
                    self._answer(200, _model(name))
                else:
                    self._answer(*_error(404, f"The model `{name}` does not exist.",
                                         "model_not_found"))
            else:
                self._answer(*_error(404, f"Unknown request URL: {method} {self.path}.",
                                     "unknown_url"))

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
