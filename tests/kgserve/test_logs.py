"""kgserve.logs: the libraries kgserve drives stay at WARNING in every process, their lines on the
root logger are dropped, and choosing a backend times the model, never the embedding cache."""

from __future__ import annotations

import logging

from kgserve import fastest, logs


def record(pathname: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("root", level, pathname, 1, "Please consider to run pre-processing",
                             None, None)


def test_building_the_app_quiets_the_libraries(app):
    for name in ("nncf", "openvino", "onnxruntime", "transformers", "httpx", "openai"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name


def test_nncf_stays_quiet_after_its_import_resets_its_logger(app):
    import nncf  # noqa: F401 - its import sets its logger to INFO
    import rich

    logs.quiet_nncf()
    assert logging.getLogger("nncf").getEffectiveLevel() == logging.WARNING
    assert rich.get_console().quiet  # the console its progress bars draw on


def test_a_library_line_on_the_root_logger_is_dropped_below_error(app, caplog):
    root = logging.getLogger()
    with caplog.at_level(logging.INFO):
        root.handle(record("/venv/site-packages/onnxruntime/quantization/quantize.py"))
        root.handle(record("/venv/site-packages/onnxruntime/quantization/quantize.py",
                           logging.ERROR))
        root.handle(record("/srv/app/mine.py"))
    assert [(r.levelno, r.pathname.rsplit("/", 1)[-1]) for r in caplog.records] == [
        (logging.ERROR, "quantize.py"), (logging.WARNING, "mine.py")]


class Recorder:
    """A provider stand-in that records the texts of every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> None:
        self.calls.append(list(texts))


def test_timing_a_backend_never_repeats_a_text():
    """A prepared provider caches embeddings: a repeated text would time the cache."""
    provider = Recorder()
    fastest.measure(provider, seconds=0.05)
    texts = [t for call in provider.calls for t in call]
    assert {len(c) for c in provider.calls} == {1, 8} and len(texts) == len(set(texts))


def test_a_logged_traceback_shows_no_credentials(app, caplog, monkeypatch):
    """log.exception() of an error whose message holds a URL with its password, or the API key."""
    monkeypatch.setenv("OPENAI_API_KEY", "the-real-key-1234")
    log = logging.getLogger("kgserve.serve.manager")
    with caplog.at_level(logging.ERROR):
        try:
            raise ConnectionError("cannot reach http://proxyuser:hunter2@proxy.example:3128/v1 "
                                  "with key the-real-key-1234")
        except ConnectionError:
            log.exception("loading %s failed", "some-model")
    shown = caplog.text + "".join(logging.Formatter().format(r) for r in caplog.records)
    assert "loading some-model failed" in shown and "ConnectionError" in shown
    assert "http://***@proxy.example:3128/v1" in shown
    assert "hunter2" not in shown and "proxyuser" not in shown and "the-real-key" not in shown
