"""kgserve's logging, in one place for every process (gunicorn workers, `flask --app kgserve`,
`make run`): the libraries it drives at WARNING, since their INFO lines (NNCF's per-layer
quantizer notes, the HTTP clients' request lines) and progress bars are noise to an operator;
the HTTP clients' records and every traceback scrubbed of credentials (kgserve.redact) at any
level."""

from __future__ import annotations

import logging
from typing import Any

from .redact import ScrubFilter

QUIET = ("nncf", "openvino", "onnxruntime", "torch", "transformers", "sentence_transformers",
         "optimum", "huggingface_hub", "filelock", "urllib3", "httpx", "httpx2", "httpcore",
         "openai")
SCRUBBED = ("httpx", "httpx2", "httpcore", "openai")  # they log the URLs they call
_SCRUBBED_NAMES = SCRUBBED + tuple(f"{name}." for name in SCRUBBED)
_scrub = ScrubFilter()


class _LibraryLinesOnRoot(logging.Filter):
    """Drop what a quieted library logs below ERROR through the root logger (`logging.warning`
    in ONNX Runtime's quantizer: "Please consider to run pre-processing ..."), where no
    logger's level can reach it."""

    folders = tuple(f"/{name}/" for name in QUIET)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not any(
            folder in record.pathname for folder in self.folders)


_root_filter = _LibraryLinesOnRoot()


def configure() -> None:
    """Set the libraries' loggers to WARNING and scrub the HTTP clients' records (idempotent)."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if _root_filter not in logging.getLogger().filters:
        logging.getLogger().addFilter(_root_filter)
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubs", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = previous(*args, **kwargs)
        # A logger's filter misses its children; a traceback can come from any logger.
        if made.exc_info or made.name.startswith(_SCRUBBED_NAMES):
            _scrub.filter(made)
        return made

    record.scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


def quiet_nncf() -> None:
    """NNCF sets its logger to INFO when first imported, and draws its progress bars with rich's
    shared console: call right after importing nncf."""
    import rich

    configure()
    rich.reconfigure(quiet=True)
