"""Settings for kgserve: defaults, then KG_* environment variables, then test overrides."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from .schemas import MAX_INPUT_CHARS
from .serve.manager import LOAD_RETRY_SECONDS

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,          # KG_DATABASE_URL; else libpq PG* env; else the local cluster
    "ADMIN_TOKEN": None,           # KG_ADMIN_TOKEN; unset disables /admin/*
    "API_TOKEN": None,             # KG_API_TOKEN; when set, /v1/* requires it
    "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,  # KG_MAX_CONTENT_LENGTH: request body limit (413)
    "MAX_INPUT_CHARS": MAX_INPUT_CHARS,  # KG_MAX_INPUT_CHARS: characters per input text (400)
    "DB_CONNECT_TIMEOUT": 2,       # seconds for one connection attempt
    "DB_POOL_TIMEOUT": 3.0,        # seconds a request waits for a pooled connection (then 503)
    "DB_STATEMENT_TIMEOUT_MS": 3000,
    "NOTIFY_CHANNEL": "kg_embedding_config",
    "POLL_INTERVAL": 3.0,          # seconds between safety-net checks of the active config id
    "LISTENER": True,              # follow config changes (LISTEN/NOTIFY) in a background thread
    "LOAD_RETRY_SECONDS": LOAD_RETRY_SECONDS,  # a config that failed to load waits this long
    # KG_LAST_CONFIG_FILE: the last known active config, for workers started during an outage
    # (default $XDG_STATE_HOME/kgserve/last-config-<hash of the database URL>.json)
    "LAST_CONFIG_FILE": None,
    # Micro-batching (kgserve.serve.batching) of providers that batch; the size limit is the
    # config's batch_size.
    "BATCHING": True,              # KG_BATCHING=false: one model call per request
    "BATCH_MAX_TOKENS": 8192,      # padded tokens (longest x count) per model call
    "BATCH_MAX_WAIT_MS": 2.0,      # top-up wait for a fuller batch, only right after a busy model
    "BATCH_MAX_QUEUE": 2048,       # texts waiting per worker before new requests get 429
    "BATCH_CALL_SIZE": 8,          # a batch runs sorted by length in model calls of ~this many (CPU)
    "REQUEST_TIMEOUT": 60.0,       # KG_REQUEST_TIMEOUT: seconds a request may wait for the model
    "CACHE_MB": 256,               # KG_CACHE_MB: embedding cache per worker (local models); 0 off
}

# Secrets are taken verbatim: from_prefixed_env would JSON-decode a token such as "123".
_SECRETS = {"ADMIN_TOKEN": "KG_ADMIN_TOKEN", "API_TOKEN": "KG_API_TOKEN",
            "DATABASE_URL": "KG_DATABASE_URL"}


def load_settings(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Fill app.config from the defaults, the KG_* environment and `test_config`."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("KG")
    for key, var in _SECRETS.items():
        if os.environ.get(var):
            app.config[key] = os.environ[var]
    if test_config:
        app.config.update(test_config)

