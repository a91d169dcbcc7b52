"""Helpers for the kgserve tests: the project's schema, apps, loopback servers and calls to them."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-0123456789"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_BODY = {"provider": "local", "model_name": MINILM, "embedding_dimensions": 384,
               "precision": "float32", "device": "cpu", "allow_dimension_change": True}
ONNX_BODY = {**MINILM_BODY, "backend": "onnx"}
OPENAI_BODY = {"provider": "openai", "model_name": "text-embedding-3-small",
               "embedding_dimensions": 1536, "precision": "float32",
               "allow_dimension_change": True}


def migrate(url: str, backups: Path) -> None:
    """Apply the project's real schema (schema/migrations) to the database at `url`."""
    from click.testing import CliRunner

    from kgmigrate.cli import cli

    result = CliRunner().invoke(cli, [
        "--database-url", url, "--migrations-dir", str(REPO / "schema" / "migrations"),
        "--backups-dir", str(backups), "up", "-y", "--no-snapshot"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def activate_local(url: str, model: str, dims: int, backend: str = "torch") -> None:
    """Make a local config of `model` the active row, straight in the database (no app)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE kg_api.embedding_config SET active = FALSE")
        conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                     "embedding_dimensions, precision, backend, device, active) VALUES "
                     "('local', %s, %s, 'float32', %s, 'cpu', TRUE)", (model, dims, backend))


def make_app(url: str, **overrides):
    """Create a kgserve app for tests: admin token set, no background listener unless asked."""
    from kgserve import create_app

    config = {"TESTING": True, "DATABASE_URL": url, "ADMIN_TOKEN": ADMIN_TOKEN,
              "LISTENER": False}
    config.update(overrides)
    return create_app(config)


@contextmanager
def serve(application) -> Iterator[str]:
    """Serve `application` on a free loopback port in a thread; yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None, admin=False) -> tuple[int, dict]:
    """One request on a fresh connection: (status, JSON body)."""
    headers = {"Content-Type": "application/json"}
    if admin:
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def cosine(a, b):
    """Cosine similarity of two vectors (a float), or row-wise of two (n, d) arrays (an array)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sims = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    return float(sims) if sims.ndim == 0 else sims
