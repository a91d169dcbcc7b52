"""Credentials in OPENAI_BASE_URL (a proxy's user:password, a key in the query) and the API key
never reach a client or the log: through the real openai SDK against the loopback stand-in."""

from __future__ import annotations

import logging

import pytest

from kgserve import redact
from tests.support.kgs import OPENAI_BODY, free_port
from tests.support.openai_stub import OpenAIStub

PROXY_SECRET = "pr0xy-s3cret-pw"
QUERY_SECRET = "qk-7f3a9c0d1e2b"


def with_credentials(base_url: str) -> str:
    """`base_url` with a proxy's user:password in it."""
    return base_url.replace("http://", f"http://proxyuser:{PROXY_SECRET}@", 1)


@pytest.fixture
def env(monkeypatch):
    def point_at(base_url: str, api_key: str) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        monkeypatch.setenv("KG_OPENAI_MAX_RETRIES", "0")
        monkeypatch.setenv("KG_OPENAI_TIMEOUT", "5")

    return point_at


def assert_nothing_secret(text: str, api_key: str) -> None:
    for secret in (PROXY_SECRET, QUERY_SECRET, api_key, "proxyuser"):
        assert secret not in text, text


@pytest.mark.parametrize("raw, shown", [
    ("http://user:pw@proxy.example:3128/v1/", "http://***@proxy.example:3128/v1/"),
    (f"https://host/openai/v1?api-key={QUERY_SECRET}&api-version=2024-06-01",
     "https://host/openai/v1?api-key=***&api-version=2024-06-01"),
    (f"https://host/v1?sig={QUERY_SECRET}#frag", "https://host/v1?sig=***"),
    ("http://token@[::1]:8080/v1", "http://***@[::1]:8080/v1"),
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    (f"http://user:{PROXY_SECRET}@host:notaport/v1", "http://***"),
])
def test_a_url_is_shown_without_its_credentials(raw, shown):
    assert redact.url(raw) == shown
    assert redact.text(f"could not reach {raw} (3 retries)") == f"could not reach {shown} (3 retries)"


def test_the_api_key_and_key_shaped_text_are_masked():
    assert redact.text("key abc-DEF-123 then sk-proj-AbCdEf012345", ["abc-DEF-123"]) == \
        "key *** then sk-***"


def test_the_http_clients_log_lines_lose_the_credentials_at_any_level(client, admin, openai_stub,
                                                                      env, caplog):
    """httpx logs every URL it calls at INFO, userinfo and all; kgserve keeps it at WARNING, and
    an operator who turns it up still sees no password."""
    openai_stub.reset()
    env(with_credentials(openai_stub.base_url), openai_stub.api_key)
    with caplog.at_level(logging.DEBUG, logger="httpx2"), \
            caplog.at_level(logging.DEBUG, logger="openai"):
        resp = client.post("/admin/embedding/config", json=OPENAI_BODY, headers=admin)
    assert resp.status_code == 422  # the SDK turns the userinfo into Basic auth; the API refuses
    assert "HTTP Request: POST http://***@127.0.0.1:" in caplog.text
    assert_nothing_secret(resp.get_data(as_text=True) + caplog.text, openai_stub.api_key)
    assert logging.getLogger("httpx2").getEffectiveLevel() == logging.WARNING  # after at_level


def test_a_password_protected_endpoint_works_and_its_password_stays_hidden(client, admin, env,
                                                                           caplog):
    """An OpenAI-compatible server behind a proxy that checks a password: the provider's log
    line, and the 502 that unauthenticated /v1 clients get once it is gone, name the endpoint,
    never its password."""
    with OpenAIStub(basic_auth=f"proxyuser:{PROXY_SECRET}") as behind_proxy:
        env(with_credentials(behind_proxy.base_url), "sk-unused-by-this-endpoint-0123")
        port = behind_proxy.base_url.split(":")[2].split("/")[0]
        with caplog.at_level(logging.INFO):
            resp = client.post("/admin/embedding/config", json=OPENAI_BODY, headers=admin)
            assert resp.status_code == 200, resp.get_json()
            assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200
    with caplog.at_level(logging.INFO):
        out = client.post("/v1/embeddings", json={"input": "not cached"})  # the endpoint is gone
    assert f"at http://***@127.0.0.1:{port}/v1/ in" in caplog.text  # the ready line
    assert out.status_code == 502
    message = out.get_json()["error"]["message"]
    assert message.startswith(f"could not reach the OpenAI API at http://***@127.0.0.1:{port}/v1")
    assert_nothing_secret(out.get_data(as_text=True) + caplog.text,
                          "sk-unused-by-this-endpoint-0123")


def test_a_refused_switch_names_the_endpoint_without_credentials(client, admin, env, caplog):
    """The admin 422 and the log say which endpoint could not be reached, masked."""
    port = free_port()
    env(f"http://proxyuser:{PROXY_SECRET}@127.0.0.1:{port}/v1?api-key={QUERY_SECRET}",
        "sk-test-0123456789abcdef")
    with caplog.at_level(logging.INFO):
        resp = client.post("/admin/embedding/config", json=OPENAI_BODY, headers=admin)
    assert resp.status_code == 422
    message = resp.get_json()["message"]
    assert f"could not reach the OpenAI API at http://***@127.0.0.1:{port}/v1/?api-key=***" \
        in message
    assert_nothing_secret(resp.get_data(as_text=True) + caplog.text, "sk-test-0123456789abcdef")
