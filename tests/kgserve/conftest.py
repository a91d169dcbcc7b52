"""Fixtures for kgserve: a migrated database, an app per test, live servers, test stand-ins.

Helpers that are not fixtures live in tests/support/ (kgs, waiting, gate, gunicorn)."""

from __future__ import annotations

import pytest

from tests.support.kgs import ADMIN_TOKEN, MINILM_BODY, make_app, migrate


@pytest.fixture
def kg_url(db_url, tmp_path):
    """A fresh database with the project's schema (the default active row is openai 1536-d)."""
    migrate(db_url, tmp_path / "backups")
    return db_url


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


@pytest.fixture
def minilm(client, admin):
    """Switch the app to the bundled MiniLM through the admin API; return the response JSON."""
    resp = client.post("/admin/embedding/config", json=MINILM_BODY, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory):
    """XDG_STATE_HOME for the session: where kgserve keeps the last known config (and gunicorn
    servers started by tests, which inherit the environment)."""
    with pytest.MonkeyPatch.context() as env:
        folder = tmp_path_factory.mktemp("state")
        env.setenv("XDG_STATE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One export cache (KG_MODEL_CACHE) for the whole session: each export is made once."""
    with pytest.MonkeyPatch.context() as env:
        folder = tmp_path_factory.mktemp("model-cache")
        env.setenv("KG_MODEL_CACHE", str(folder))
        yield folder


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


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory, openai_stub):
    """kgserve under real gunicorn with two workers, on a cluster of its own (per module)."""
    from tests.support.gunicorn import running_gunicorn

    with running_gunicorn(tmp_path_factory.mktemp("gunicorn"), openai_stub) as server:
        yield server
