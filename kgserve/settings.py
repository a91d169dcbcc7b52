"""Settings for kgserve: defaults, then KG_* environment variables, then test overrides; a value
kgserve cannot use stops it at start-up, naming its variable (gunicorn.conf.py checks the
environment before any worker starts, create_app checks again)."""

from __future__ import annotations

import math
import os
from typing import Any

from flask import Config, Flask

from .schemas import MAX_INPUT_CHARS
from .serve.deadlines import MAX_TIMEOUT
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


# Numbers: (lowest, highest, lowest allowed itself, what the number counts).
_NUMBERS: dict[str, tuple[float, float, bool, str]] = {
    "REQUEST_TIMEOUT": (0, MAX_TIMEOUT, False, "seconds"),
    "MAX_CONTENT_LENGTH": (1, math.inf, True, "bytes"),
    "MAX_INPUT_CHARS": (1, math.inf, True, "characters"),
    "CACHE_MB": (0, math.inf, True, "megabytes"),
    "POLL_INTERVAL": (0, math.inf, False, "seconds"),
    "LOAD_RETRY_SECONDS": (0, math.inf, True, "seconds"),
    "BATCH_MAX_TOKENS": (1, math.inf, True, "tokens"),
    "BATCH_MAX_WAIT_MS": (0, math.inf, True, "milliseconds"),
    "BATCH_MAX_QUEUE": (1, math.inf, True, "texts"),
    "BATCH_CALL_SIZE": (1, math.inf, True, "texts"),
}
# Flask reads None as "no limit"; `KG_MAX_CONTENT_LENGTH=null` has always meant that.
_NONE_MEANS_NO_LIMIT = ("MAX_CONTENT_LENGTH",)


class SettingsError(ValueError):
    """A setting has a value kgserve cannot use; the message names its variable."""


def load_settings(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Fill app.config from the defaults, the KG_* environment and `test_config`; SettingsError
    for a value kgserve cannot use."""
    _read(app.config)
    if test_config:
        app.config.update(test_config)
    check(app.config)


def check_environment() -> None:
    """Check the KG_* settings in the environment without building an app (gunicorn's config)."""
    config = Config(os.getcwd())
    _read(config)
    check(config)


def check(config: dict[str, Any]) -> None:
    """Refuse a number out of its range or of the wrong type, naming the KG_ variable."""
    for key, (low, high, low_ok, unit) in _NUMBERS.items():
        value = config.get(key)
        if value is None and key in _NONE_MEANS_NO_LIMIT:
            continue
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else math.nan
        if not (low <= number <= high and (low_ok or number > low)):
            above = f"at least {low:g}" if low_ok else f"more than {low:g}"
            within = above if high == math.inf else f"{above} and at most {high:g}"
            raise SettingsError(f"KG_{key} must be a number of {unit}, {within}, not {value!r}")


def _read(config: Config) -> None:
    config.from_mapping(DEFAULTS)
    config.from_prefixed_env("KG")
    for key, var in _SECRETS.items():
        if os.environ.get(var):
            config[key] = os.environ[var]

