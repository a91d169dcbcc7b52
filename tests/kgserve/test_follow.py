"""Workers follow config changes through LISTEN/NOTIFY, and through the periodic check."""

from __future__ import annotations

import psycopg
import pytest

from kgserve import shutdown
from tests.support.kgs import MINILM, MINILM_BODY, make_app
from tests.support.waiting import wait_for


@pytest.fixture
def apps(kg_url):
    """Two apps on one database, as two workers: listeners on, safety-net poll rare."""
    made = [make_app(kg_url, LISTENER=True, POLL_INTERVAL=300) for _ in range(2)]
    yield made
    for a in made:
        shutdown(a)


def served(app):
    return app.extensions["kgserve"].manager.status()


def test_a_change_in_one_worker_reaches_the_other(apps, admin):
    a, b = apps
    for x in apps:  # the first request starts the listener, which loads the active config
        x.test_client().get("/healthz")
    resp = a.test_client().post("/admin/embedding/config", json=MINILM_BODY, headers=admin)
    assert resp.status_code == 200
    new_id = resp.get_json()["config_id"]
    wait_for(lambda: served(b)["config_id"] == new_id and served(b)["state"] == "ready",
             "the second worker to serve the new config")
    assert served(b)["model"] == MINILM
    out = b.test_client().post("/v1/embeddings", json={"input": "hi"})
    assert out.status_code == 200 and out.get_json()["model"] == MINILM


@pytest.mark.slow
def test_reload_in_one_worker_rebuilds_the_others(apps, admin):
    a, b = apps
    resp = a.test_client().post("/admin/embedding/config", json=MINILM_BODY, headers=admin)
    assert resp.status_code == 200
    b.test_client().get("/healthz")
    wait_for(lambda: served(b)["config_id"] == resp.get_json()["config_id"], "follow")
    before = b.extensions["kgserve"].manager.current()
    assert a.test_client().post("/admin/embedding/config/reload", headers=admin).status_code == 200
    wait_for(lambda: b.extensions["kgserve"].manager.current() is not before, "reload in b")
    assert served(b)["state"] == "ready"


@pytest.mark.slow
def test_the_periodic_check_catches_a_missed_notification(kg_url, admin):
    app = make_app(kg_url, LISTENER=True, POLL_INTERVAL=0.5)
    try:
        c = app.test_client()
        assert c.post("/admin/embedding/config", json=MINILM_BODY, headers=admin).status_code == 200
        # Another writer changes the row without NOTIFY (as an old tool would).
        with psycopg.connect(kg_url, autocommit=True) as conn, conn.transaction():
            conn.execute("UPDATE kg_api.embedding_config SET active = FALSE WHERE active")
            new_id = conn.execute(
                "INSERT INTO kg_api.embedding_config (provider, model_name, "
                "embedding_dimensions, precision, device, max_seq_length, updated_by) "
                "VALUES ('local', %s, 384, 'float32', 'cpu', 128, 'sql') RETURNING id",
                (MINILM,)).fetchone()[0]
        wait_for(lambda: served(app)["config_id"] == new_id, "the poll to pick up the row")
    finally:
        shutdown(app)


@pytest.mark.slow
def test_a_worker_that_cannot_load_the_new_model_keeps_the_old_one(apps, admin, kg_url):
    a, b = apps
    resp = a.test_client().post("/admin/embedding/config", json=MINILM_BODY, headers=admin)
    b.test_client().get("/healthz")
    wait_for(lambda: served(b)["config_id"] == resp.get_json()["config_id"], "follow")
    with psycopg.connect(kg_url, autocommit=True) as conn, conn.transaction():
        conn.execute("UPDATE kg_api.embedding_config SET active = FALSE WHERE active")
        conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                     "embedding_dimensions, precision) VALUES ('local', 'nobody/gone', 384, "
                     "'float32')")
        conn.execute("SELECT pg_notify('kg_embedding_config', '{}')")
    wait_for(lambda: served(b)["last_error"], "b to try and fail")
    status = served(b)
    assert status["state"] == "ready" and status["model"] == MINILM
    assert "nobody/gone" in status["last_error"]
    out = b.test_client().post("/v1/embeddings", json={"input": "still here"})
    assert out.status_code == 200 and out.get_json()["model"] == MINILM
