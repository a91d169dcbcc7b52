"""Every validation and auth error path answers JSON naming the problem; never a traceback."""

from __future__ import annotations

import logging

import pytest

from tests.support.kgs import MINILM_BODY

CONFIG = "/admin/embedding/config"


@pytest.mark.parametrize("change, field", [
    ({"bogus": 1}, "bogus"),
    ({"provider": "azure"}, "provider"),
    ({"provider": None}, "provider"),
    ({"model_name": "m" * 201}, "model_name"),
    ({"model_name": ""}, "model_name"),
    ({"model_name": 5}, "model_name"),
    ({"embedding_dimensions": "384"}, "embedding_dimensions"),
    ({"embedding_dimensions": 384.5}, "embedding_dimensions"),
    ({"embedding_dimensions": 0}, "embedding_dimensions"),
    ({"precision": "int8"}, "precision"),
    ({"precision": "int8", "backend": "torch"}, "precision"),
    ({"precision": "float16", "backend": "onnx"}, "precision"),
    ({"precision": "float16", "backend": "openvino"}, "precision"),
    ({"precision": "float16", "device": "cpu"}, "precision"),
    ({"precision": "bfloat16"}, "precision"),
    ({"backend": "tensorrt"}, "backend"),
    ({"backend": 1}, "backend"),
    ({"backend": "onnx", "device": "cuda"}, "device"),
    ({"backend": "openvino", "device": "mps"}, "device"),
    ({"provider": "openai", "backend": "onnx"}, "backend"),
    ({"provider": "openai", "precision": "int8", "backend": "onnx"}, "backend"),
    ({"provider": "openai", "precision": "int8"}, "precision"),
    ({"device": "tpu"}, "device"),
    ({"num_threads": 0}, "num_threads"),
    ({"batch_size": -1}, "batch_size"),
    ({"max_memory_mb": "lots"}, "max_memory_mb"),
    ({"max_seq_length": 0}, "max_seq_length"),
    ({"normalize_embeddings": "yes"}, "normalize_embeddings"),
    ({"allow_dimension_change": 1}, "allow_dimension_change"),
    ({"updated_by": "u" * 101}, "updated_by"),
    ({"updated_by": "ops\x00"}, "updated_by"),  # PostgreSQL refuses NUL in text: was a 500
    ({"updated_by": "ops\n2026-01-01 [INFO] forged line"}, "updated_by"),
    ({"model_name": "sentence-transformers/all-MiniLM-L6-v2\x00"}, "model_name"),
])
def test_config_body_errors_name_the_field(client, admin, change, field):
    body = {**MINILM_BODY, **change}
    resp = client.post(CONFIG, json=body, headers=admin)
    assert resp.status_code == 422
    err = resp.get_json()
    assert err["success"] is False and err["error"] == "invalid_request"
    assert err["param"] == field and field in err["fields"]
    assert field in err["message"]


@pytest.mark.parametrize("missing", ["provider", "model_name", "embedding_dimensions",
                                     "precision"])
def test_config_required_fields(client, admin, missing):
    body = {k: v for k, v in MINILM_BODY.items() if k != missing}
    resp = client.post(CONFIG, json=body, headers=admin)
    assert resp.status_code == 422 and resp.get_json()["param"] == missing


@pytest.mark.parametrize("data, content_type", [
    ("{not json", "application/json"),
    ("[1, 2]", "application/json"),
    ("provider=local", "application/x-www-form-urlencoded"),
])
def test_config_body_must_be_a_json_object(client, admin, data, content_type):
    resp = client.post(CONFIG, data=data, content_type=content_type, headers=admin)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_json"


@pytest.mark.parametrize("body, param", [
    ({}, "input"),
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["ok", ""]}, "input"),
    ({"input": ["ok", 3]}, "input"),
    ({"input": [[1, 2, 3]]}, "input"),
    ({"input": None}, "input"),
    ({"input": {"a": 1}}, "input"),
    ({"input": ["x"] * 2049}, "input"),
    ({"input": "x", "encoding_format": "int4"}, "encoding_format"),
    ({"input": "x", "dimensions": "64"}, "dimensions"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x", "input_type": "passage"}, "input_type"),
    ({"input": "x", "model": 7}, "model"),
    ({"input": "x", "temperature": 1}, "temperature"),
])
def test_embeddings_errors_use_openai_shape(client, body, param):
    resp = client.post("/v1/embeddings", json=body)
    assert resp.status_code == 400
    err = resp.get_json()
    assert set(err) == {"error"}
    assert set(err["error"]) == {"message", "type", "param", "code"}
    assert err["error"]["type"] == "invalid_request_error"
    assert err["error"]["param"] == param


def test_embeddings_bad_json_is_openai_shaped(client):
    resp = client.post("/v1/embeddings", data="{oops", content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_json"


def test_body_limit_is_413_json(make, admin):
    app = make(MAX_CONTENT_LENGTH=1024)
    resp = app.test_client().post("/v1/embeddings", json={"input": "x" * 4096})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "request_too_large"
    assert "1024 bytes" in resp.get_json()["error"]["message"]
    resp = app.test_client().post(CONFIG, json={"model_name": "x" * 4096}, headers=admin)
    assert resp.status_code == 413 and resp.get_json()["error"] == "request_too_large"


def test_unknown_path_and_wrong_method_are_json(client):
    resp = client.get("/nope")
    assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"
    resp = client.get("/v1/embeddings")
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"
    resp = client.delete("/embedding/config")
    assert resp.status_code == 405 and resp.is_json


def test_unexpected_errors_are_a_generic_500_and_logged(make, caplog):
    app = make()

    @app.get("/v1/boom")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    with caplog.at_level(logging.ERROR, logger="kgserve"):
        resp = app.test_client().get("/v1/boom")
    assert resp.status_code == 500
    text = resp.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert resp.get_json()["error"]["code"] == "internal_error"
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


# -- auth -------------------------------------------------------------------------------------
ADMIN_ROUTES = [("get", CONFIG), ("get", "/admin/embedding/configs"), ("post", CONFIG),
                ("post", "/admin/embedding/config/reload")]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_admin_disabled_without_a_token(make, method, path):
    app = make(ADMIN_TOKEN=None)
    resp = getattr(app.test_client(), method)(path, headers={"Authorization": "Bearer x"})
    assert resp.status_code == 403
    assert "KG_ADMIN_TOKEN" in resp.get_json()["message"]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer ",
                                    "test-admin-token-0123456789"])
def test_admin_needs_the_right_bearer_token(client, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    resp = getattr(client, method)(path, headers=headers, json={})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "test-admin-token" not in resp.get_data(as_text=True)


def test_admin_token_from_the_environment(kg_url, monkeypatch):
    monkeypatch.setenv("KG_ADMIN_TOKEN", "12345")  # digits: must stay a string
    from kgserve import create_app, shutdown

    app = create_app({"DATABASE_URL": kg_url, "LISTENER": False})
    try:
        c = app.test_client()
        assert c.get(CONFIG, headers={"Authorization": "Bearer 12345"}).status_code == 200
        assert c.get(CONFIG, headers={"Authorization": "Bearer 1234"}).status_code == 401
    finally:
        shutdown(app)


def test_api_token_guards_v1_only_when_set(make):
    app = make(API_TOKEN="api-secret")
    c = app.test_client()
    resp = c.get("/v1/models")
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "invalid_api_key"
    resp = c.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert c.get("/v1/models", headers={"Authorization": "Bearer api-secret"}).status_code == 200
    assert c.get("/embedding/config").status_code == 200  # public stays public
    open_app = make()
    assert open_app.test_client().get("/v1/models").status_code == 200


def test_an_unmigrated_database_is_a_clear_503(db_url, caplog):
    from kgserve import create_app, shutdown

    app = create_app({"DATABASE_URL": db_url, "LISTENER": True, "POLL_INTERVAL": 0.2})
    try:
        c = app.test_client()
        resp = c.get("/embedding/config")
        assert resp.status_code == 503 and "kgmigrate up" in resp.get_json()["message"]
        resp = c.post("/v1/embeddings", json={"input": "x"})
        assert resp.status_code == 503 and "kgmigrate up" in resp.get_json()["error"]["message"]
        assert c.get("/readyz").status_code == 503
    finally:
        shutdown(app)
    assert "Traceback" not in caplog.text


NESTED = '{"input": ' + "[" * 5000 + "]" * 5000 + "}"  # 10 KB, past json's recursion limit


@pytest.mark.parametrize("path", ["/v1/embeddings", CONFIG])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(client, admin, path):
    resp = client.post(path, data=NESTED, content_type="application/json", headers=admin)
    assert resp.status_code == 400
    body = resp.get_json()
    message = body["error"]["message"] if path.startswith("/v1/") else body["message"]
    assert "nested too deeply" in message


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "-1", "0", "1001", "ten"])
def test_config_list_limit_must_be_an_integer(client, admin, limit):
    resp = client.get("/admin/embedding/configs", query_string={"limit": limit}, headers=admin)
    assert resp.status_code == 422 and resp.get_json()["param"] == "limit"


def test_a_model_name_under_an_unknown_home_is_simply_not_found(client, admin, caplog):
    with caplog.at_level(logging.ERROR):
        resp = client.post(CONFIG, json={**MINILM_BODY, "model_name": "~nosuchuser/x"},
                           headers=admin)
    assert resp.status_code == 422
    assert resp.get_json()["error"] == "model_not_available"
    assert "unexpectedly" not in resp.get_json()["message"]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the log


def test_405_names_the_allowed_methods(client):
    resp = client.put("/v1/embeddings")
    assert resp.status_code == 405 and resp.is_json
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize("path, method", [("/v1/embeddings", "POST"),
                                          ("/admin/embedding/config", "GET")])
def test_options_is_json_with_the_allowed_methods(client, path, method):
    resp = client.options(path)
    assert resp.status_code == 200 and resp.is_json
    assert method in resp.get_json()["methods"]
    assert method in resp.headers["Allow"]


@pytest.mark.parametrize("path", ["/admin/embedding/config", "/v1/embeddings", "/v1/models",
                                  "/embedding/config"])
def test_options_and_405_name_the_same_methods(client, admin, path):
    """One source: a path served by two routes (GET and POST /admin/embedding/config) lists both."""
    options = client.options(path, headers=admin)
    refused = client.open(path, method="PATCH", headers=admin)
    assert refused.status_code == 405 and options.status_code == 200
    assert options.headers["Allow"] == refused.headers["Allow"]
    assert options.get_json()["methods"] == refused.headers["Allow"].split(", ")
    if path == "/admin/embedding/config":
        assert options.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


@pytest.mark.parametrize("header, value", [("x-request-timeout", "9" * 8000),
                                           ("x-kgserve-config-id", "x" * 8000)])
def test_a_huge_header_value_is_not_echoed_whole(client, header, value):
    resp = client.post("/v1/embeddings", json={"input": "x"}, headers={header: value})
    assert resp.status_code == 400
    message = resp.get_json()["error"]["message"]
    assert len(resp.data) < 600 and "(8000 characters)" in message, message


def test_echoed_names_are_capped_everywhere(client):
    long = "m" * 5000
    for resp in (client.get(f"/browser/{long}"), client.get(f"/browser/vendor/{long}"),
                 client.get(f"/v1/models/{long}")):
        assert resp.status_code == 404 and len(resp.data) < 600, resp.data[:200]
        assert "(5000 characters)" in resp.get_data(as_text=True)
