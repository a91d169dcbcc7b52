"""`flask --app kgserve embedding show|set|list|reload`: the admin API for a shell."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from marshmallow import ValidationError

from . import ops
from .configs.store import DimensionChangeRefused, NoActiveConfig
from .db import DatabaseUnavailable
from .providers.base import ProviderError
from .providers.options import BACKENDS, DEVICES, PRECISIONS, PROVIDERS
from .runtime import runtime
from .schemas import ConfigRequestSchema
from .threads import per_worker

embedding = AppGroup("embedding", help="Show and change the embedding configuration.")
_FAILURES = (DatabaseUnavailable, ProviderError, DimensionChangeRefused, NoActiveConfig)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _run(fn, *args, **kwargs) -> Any:
    try:
        return fn(*args, **kwargs)
    except ValidationError as exc:
        raise click.ClickException(f"invalid config: {json.dumps(exc.messages)}") from None
    except _FAILURES as exc:
        raise click.ClickException(str(exc)) from None


@embedding.command("show")
def show() -> None:
    """Print the active configuration."""
    row, _ = _run(ops.active_row, runtime(), allow_stale=False)
    _echo(row)


@embedding.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def list_(limit: int) -> None:
    """Print the configuration history, newest first."""
    _echo(_run(ops.list_configs, runtime(), limit))


@embedding.command("set")
@click.option("--provider", type=click.Choice(PROVIDERS), required=True)
@click.option("--model-name", "--model", required=True, help="e.g. sentence-transformers/all-MiniLM-L6-v2")
@click.option("--dimensions", "embedding_dimensions", type=int, required=True)
@click.option("--precision", type=click.Choice(PRECISIONS),
              default="float32", show_default=True,
              help="int8 with --backend onnx or openvino (checked by the accuracy guard).")
@click.option("--backend", type=click.Choice(BACKENDS),
              help="How a local model runs: torch (default), onnx (ONNX Runtime) or openvino.")
@click.option("--device", type=click.Choice(DEVICES))
@click.option("--max-memory-mb", type=int)
@click.option("--num-threads", type=int)
@click.option("--batch-size", type=int)
@click.option("--max-seq-length", type=int)
@click.option("--normalize/--no-normalize", "normalize_embeddings", default=None)
@click.option("--allow-dimension-change", is_flag=True,
              help="Accept a vector size different from the active config's.")
@click.option("--if-changed", is_flag=True, help="Do nothing when this is already active.")
@click.option("--fastest-backend", is_flag=True,
              help="Time torch, onnx and openvino (int8 where the accuracy guard passes) on "
                   "this machine and activate the fastest; with --if-changed, keep an active "
                   "config that differs only in backend and precision.")
@click.option("--updated-by", default="cli", show_default=True)
def set_(if_changed: bool, fastest_backend: bool, **options: Any) -> None:
    """Load the model here to check it, then activate it for every worker."""
    body = {k: v for k, v in options.items() if v is not None}
    if fastest_backend and (body.get("backend") or body.get("precision") != "float32"):
        raise click.UsageError("--fastest-backend picks the backend and precision itself")
    data = _run(ConfigRequestSchema().load, body)
    rt = runtime()
    if fastest_backend:
        if if_changed and _run(ops.active_matches, rt, data, ("backend", "precision")):
            _echo(_run(ops.change_config, rt, data, serve=False, if_changed=True,
                       ignore=("backend", "precision")))
            return
        data = _fastest(rt, data)
    click.echo(f"checking {data['provider']} {data['model_name']} ...", err=True)
    _echo(_run(ops.change_config, rt, data, serve=False, if_changed=if_changed))


def _fastest(rt, data: dict[str, Any]) -> dict[str, Any]:
    """Time every backend for `data`, print the table, return `data` with the winner's."""
    from . import fastest

    try:
        share = per_worker()
    except ValueError as exc:  # a bad KG_WORKERS: gunicorn would refuse it too
        raise click.ClickException(str(exc)) from None
    click.echo(f"timing {len(fastest.CANDIDATES)} backends for {data['model_name']}: each "
               f"exported once (cached) and checked against torch float32, then "
               f"{fastest.describe_timing(share)} ...", err=True)
    trials = _run(fastest.trial, rt, data)
    for t in trials:
        rate = f"{t.texts_per_second:8.1f} texts/s" if t.texts_per_second else "     refused   "
        click.echo(f"  {t.backend:<9}{t.precision:<8}{rate}  {t.note[:160]}", err=True)
    winner = _run(fastest.best, trials)
    click.echo(f"fastest: {winner.backend} {winner.precision}", err=True)
    return {**data, "backend": winner.backend, "precision": winner.precision}


@embedding.command("browser")
def browser_() -> None:
    """Export the active model for browsers (transformers.js) now, not on the first page load."""
    from .browser import export as browser_export

    row, _ = _run(ops.active_row, runtime(), allow_stale=False)
    click.echo(f"preparing the browser export of {row['model_name']} ...", err=True)
    try:
        _echo(_run(browser_export.prepare, row))
    except browser_export.NotForBrowser as exc:
        raise click.ClickException(str(exc)) from None


@embedding.command("reload")
def reload_() -> None:
    """Tell every worker to rebuild its provider from the active configuration."""
    _echo(_run(ops.reload_config, runtime(), serve=False))


def init_app(app: Flask) -> None:
    """Register the command group."""
    app.cli.add_command(embedding)
