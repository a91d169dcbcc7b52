"""kgserve: the embedding server. `gunicorn kgserve:app`; nothing is built, connected or loaded
at import."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider


class _JSON(DefaultJSONProvider):
    """JSON with ISO 8601 timestamps and keys in the order they were built, written by orjson:
    an embedding response is mostly floats, which the standard library formats one by one in
    Python (numpy arrays go in as they are)."""

    sort_keys = False
    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | \
        orjson.OPT_PASSTHROUGH_DATETIME

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        if hasattr(o, "tolist"):  # numpy arrays, where the standard library writes (debug mode)
            return o.tolist()
        return DefaultJSONProvider.default(o)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # indent and other json.dumps options (flask's debug mode)
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=self.default, option=self._OPTIONS).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self._app.debug:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj, default=self.default,
                                                    option=self._OPTIONS),
                                       mimetype=self.mimetype)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: logging, config, error handlers, runtime (no I/O), blueprints, CLI."""
    from . import cli, errors, logs, metrics, openapi, runtime
    from .settings import load_settings
    from .views import admin, browser, health, openai_api, public, tokenize

    logs.configure()
    app = Flask(__name__, static_folder=None)
    app.json_provider_class = _JSON
    app.json = _JSON(app)
    load_settings(app, test_config)
    errors.init_app(app)
    metrics.init_app(app)
    runtime.init_app(app)
    for module in (public, admin, openai_api, tokenize, health, browser):
        app.register_blueprint(module.bp)
    openapi.init_app(app)
    cli.init_app(app)
    return app


def shutdown(app: Flask) -> None:
    """Stop the app's listener, close its pool and release its model (tests, worker exit)."""
    from .runtime import runtime

    runtime(app).close()


def __getattr__(name: str) -> Any:
    """Build `app` when it is first asked for (`gunicorn kgserve:app`, `flask --app kgserve`),
    in the process that serves it: importing kgserve (gunicorn's config does) builds nothing."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
