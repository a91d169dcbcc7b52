"""`flask --app kgserve embedding show|set|list|reload` over the same functions as the admin API."""

from __future__ import annotations

import json

import psycopg

from tests.support.kgs import MINILM


def run(app, *args):
    return app.test_cli_runner().invoke(args=["embedding", *args])


SET = ["set", "--provider", "local", "--model-name", MINILM, "--dimensions", "384",
       "--device", "cpu"]


def test_show_and_list(app):
    out = run(app, "show")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["model_name"] == "text-embedding-3-small"
    out = run(app, "list")
    assert out.exit_code == 0 and [r["id"] for r in json.loads(out.output)] == [1]


def test_set_checks_then_activates(app, kg_url):
    out = run(app, *SET)
    assert out.exit_code == 1 and "allow_dimension_change" in out.output  # 1536 -> 384
    out = run(app, *SET, "--allow-dimension-change")
    assert out.exit_code == 0, out.output
    result = json.loads(out.output[out.output.index("{"):])
    assert result["success"] is True and result["config_id"] == 2
    with psycopg.connect(kg_url) as conn:
        row = conn.execute("SELECT provider, model_name, embedding_dimensions, updated_by "
                           "FROM kg_api.embedding_config WHERE active").fetchone()
    assert row == ("local", MINILM, 384, "cli")
    again = run(app, *SET, "--if-changed")
    assert again.exit_code == 0 and "already the active config" in again.output
    assert json.loads(run(app, "list").output)[0]["id"] == 2


def test_set_refuses_what_does_not_load(app, kg_url):
    out = run(app, "set", "--provider", "local", "--model-name", "nobody/missing",
              "--dimensions", "1536")
    assert out.exit_code == 1 and "nobody/missing" in out.output
    out = run(app, "set", "--provider", "local", "--model-name", "x" * 201, "--dimensions", "8")
    assert out.exit_code == 1 and "model_name" in out.output
    assert [r["id"] for r in json.loads(run(app, "list").output)] == [1]


def test_reload_notifies_the_workers(app, kg_url):
    with psycopg.connect(kg_url, autocommit=True) as listener:
        listener.execute("LISTEN kg_embedding_config")
        out = run(app, "reload")
        assert out.exit_code == 0, out.output
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert json.loads(notes[0].payload)["reload"] is True
