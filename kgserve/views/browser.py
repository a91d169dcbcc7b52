"""/browser/: the page, the kgembed.js module, transformers.js and the active model's files.

Everything a page needs comes from this origin: the module and page (kgserve/browser/static),
transformers.js and ONNX Runtime Web's WebAssembly build (kgserve/browser/vendor, package data
copied from npm by `make install`: kgserve.browser.vendored), and the model exported for browsers
(kgserve.browser.export). Model files live under a content-addressed id, so they are
cached for a year and never revalidated; the rest is revalidated with ETags (a 304 when unchanged).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from pathlib import Path
from typing import BinaryIO

from flask import Blueprint, Response, current_app, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from .. import ops, redact
from ..browser import export as browser_export
from ..browser import vendored
from ..errors import FileChanged, NotFound, RuntimeMissing
from ..runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("browser", __name__, url_prefix="/browser")

STATIC = vendored.HERE / "static"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream",
         ".html": "text/html", ".css": "text/css"}  # werkzeug adds charset=utf-8 to text/*
YEAR = 365 * 24 * 3600


def _type(path: Path) -> str:
    return TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"


def _send(path: Path) -> Response:
    """Send `path` with its type, Range and conditional support, revalidated on every use."""
    resp = send_file(path, mimetype=_type(path), conditional=True, etag=True)
    resp.cache_control.no_cache = True  # use the copy after a 304; offline: the service worker
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _send_immutable(fh: BinaryIO, stat: os.stat_result, name: str, sha256: str) -> Response:
    """Send the open, verified file `fh` under its sha256 as ETag, cached for a year (Range and
    conditional requests as send_file does them; a path would be opened again, unverified)."""
    resp = current_app.response_class(wrap_file(request.environ, fh), mimetype=_type(Path(name)),
                                      direct_passthrough=True)
    resp.content_length = stat.st_size
    resp.last_modified = stat.st_mtime
    resp.set_etag(sha256)
    resp.cache_control.public = True
    resp.cache_control.max_age = YEAR
    resp.cache_control.immutable = True
    resp.expires = int(time.time() + YEAR)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    try:
        return resp.make_conditional(request.environ, accept_ranges=True,
                                     complete_length=stat.st_size)
    except RequestedRangeNotSatisfiable:
        fh.close()
        raise


@bp.get("/")
def page() -> Response:
    """The demo page: browser and server vectors side by side."""
    return _send(STATIC / "index.html")


@bp.get("/<name>")
def static_file(name: str) -> Response:
    """kgembed.js, the page's script and style, and the service worker."""
    path = STATIC / name
    if name.startswith(".") or name not in {p.name for p in STATIC.iterdir() if p.is_file()}:
        raise NotFound(f"no file {redact.echo(name)} under /browser/")
    return _send(path)


@bp.get("/vendor/<name>")
def vendor_file(name: str) -> Response:
    """transformers.js and ONNX Runtime Web, shipped in the package."""
    if name not in vendored.FILES:
        raise NotFound(f"no vendor file {redact.echo(name)} "
                       f"(served: {', '.join(vendored.FILES)})")
    path = vendored.FOLDER / name
    if not path.is_file():
        raise RuntimeMissing(f"transformers.js is not in {vendored.FOLDER}: run `make install` "
                             "(npm ci in kgserve/browser, then kgserve/browser/vendored.py)",
                             "browser_runtime_missing")
    return _send(path)


@bp.get("/models/<model_id>/<path:name>")
def model_file(model_id: str, name: str) -> Response:
    """A file of the active config's browser export (exported on first request if needed)."""
    row, _ = ops.active_row(runtime())
    try:
        model = browser_export.describe(row)
        if model_id != model.model_id:
            raise NotFound(f"{redact.echo(model_id)} is not the active config's browser model "
                           f"({model.model_id!r}); read /embedding/config again",
                           "browser_model_not_active")
        export = browser_export.ensure(model)
    except browser_export.NotForBrowser as exc:
        raise NotFound(str(exc), "browser_not_supported") from None
    info = export.file(name)
    if info is None:
        raise NotFound(f"the browser export of {model.name!r} has no file {redact.echo(name)}")
    if export.withheld(name):
        accuracy = export.accuracy
        raise NotFound(f"the quantized graph of {model.name!r} is not offered: min cosine "
                       f"{accuracy.get('min_cosine')} to torch float32 on the probe set, "
                       f"below {accuracy.get('bound')}; load onnx/model.onnx",
                       "quantized_refused")
    try:
        fh, stat = export.open(name)
    except browser_export.ExportChanged as exc:  # never under the ETag of other bytes
        log.warning("%s; verifying the browser export again", exc)
        export = browser_export.ensure(model, again=True)
        info = export.file(name) or info
        try:
            fh, stat = export.open(name)
        except browser_export.ExportChanged as still:
            raise FileChanged(f"{name} of the browser export of {model.name!r} keeps changing "
                              "on disk; retry later") from still
    return _send_immutable(fh, stat, name, info["sha256"])
