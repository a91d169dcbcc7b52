"""Fixtures for kgserve: a migrated database, an app per test, a live loopback server."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-0123456789"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def migrate(url: str, backups: Path) -> None:
    """Apply the project's real schema (schema/migrations) to the database at `url`."""
    from kgmigrate.engine import apply
    from kgmigrate.plan import make_plan
    from kgmigrate.session import connect
    from kgmigrate.settings import Settings

    settings = Settings(database_url=url, migrations_dir=REPO / "schema" / "migrations",
                        backups_dir=backups)
    with connect(url) as conn:
        apply(conn, settings, make_plan(conn, settings))


@pytest.fixture
def kg_url(db_url, tmp_path):
    """A fresh database with the project's schema (the default active row is openai 1536-d)."""
    migrate(db_url, tmp_path / "backups")
    return db_url


def make_app(url: str, **overrides):
    """Create a kgserve app for tests: admin token set, no background listener unless asked."""
    from kgserve import create_app

    config = {"TESTING": True, "DATABASE_URL": url, "ADMIN_TOKEN": ADMIN_TOKEN,
              "LISTENER": False}
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(kg_url):
    """An app bound to this test's database; its manager and pool are closed afterwards."""
    application = make_app(kg_url)
    yield application
    from kgserve import shutdown

    shutdown(application)


@pytest.fixture
def make(kg_url):
    """make(**config): another app on this test's database, shut down after the test."""
    from kgserve import shutdown

    made = []

    def factory(**overrides):
        made.append(make_app(kg_url, **overrides))
        return made[-1]

    yield factory
    for application in made:
        shutdown(application)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin():
    """The admin Authorization header."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


MINILM_BODY = {"provider": "local", "model_name": MINILM, "embedding_dimensions": 384,
               "precision": "float32", "device": "cpu", "allow_dimension_change": True}

ONNX_BODY = {**MINILM_BODY, "backend": "onnx"}


@pytest.fixture
def minilm(client, admin):
    """Switch the app to the bundled MiniLM through the admin API; return the response JSON."""
    resp = client.post("/admin/embedding/config", json=MINILM_BODY, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@contextmanager
def serve(application):
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


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One export cache (KG_MODEL_CACHE) for the whole session: each export is made once."""
    import os

    folder = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("KG_MODEL_CACHE")
    os.environ["KG_MODEL_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("KG_MODEL_CACHE", None)
    else:
        os.environ["KG_MODEL_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_nomic_dir(tmp_path_factory):
    """A tiny random-weight NomicBert sentence-transformers model (768-d, nomic task prompts)."""
    from tests.support.tiny_models import build_nomic_model

    return build_nomic_model(tmp_path_factory.mktemp("models") / "tiny-nomic")


@pytest.fixture(scope="session")
def openai_stub():
    """A loopback stand-in for the OpenAI API; reset() between uses, .base_url for the SDK."""
    from tests.support.openai_stub import OpenAIStub

    with OpenAIStub() as stub:
        yield stub
