"""Plain operations shared by the admin API and the CLI: read, validate, prepare, activate."""

from __future__ import annotations

import logging
from typing import Any

from .configs import store
from .db import DatabaseUnavailable
from .providers.base import ProviderConfig
from .runtime import Runtime

log = logging.getLogger(__name__)


def active_row(rt: Runtime, allow_stale: bool = True) -> tuple[dict[str, Any], bool]:
    """Return (active row, stale): from the database, else the last known row when allowed."""
    try:
        with rt.db.connection() as conn:
            row = store.get_active(conn)
    except DatabaseUnavailable:
        if allow_stale and rt.last_known() is not None:
            return rt.last_known(), True
        raise
    if row is None:
        raise store.NoActiveConfig("no active embedding configuration: set one with "
                          "POST /admin/embedding/config or `flask --app kgserve embedding set`")
    rt.remember(row)
    return row, False


def active_config(rt: Runtime) -> ProviderConfig:
    """Return the ProviderConfig of the active row (the manager's lazy-load source)."""
    return ProviderConfig.from_row(active_row(rt)[0])


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """Return the public summary of a config row (GET /embedding/config)."""
    from .browser.export import summary as browser_summary

    return {
        "config_id": row.get("id"),  # a page running the model itself reloads when this changes
        "provider": row["provider"],
        "model": row["model_name"],
        "dimensions": row["embedding_dimensions"],
        "precision": row["precision"],
        **browser_summary(row),  # supports_browser, browser (transformers.js)
        "resource_allocation": {"backend": row.get("backend") or "torch",
                                **{k: row.get(k) for k in
                                   ("max_memory_mb", "num_threads", "device", "batch_size")}},
    }


def _same(active: dict[str, Any] | None, values: dict[str, Any],
          ignore: tuple[str, ...] = ()) -> bool:
    if active is None:
        return False
    keys = [k for k in store.WRITABLE if k != "updated_by" and k not in ignore
            and values.get(k) is not None]
    return all(active.get(k) == values[k] for k in keys)


def active_matches(rt: Runtime, data: dict[str, Any], ignore: tuple[str, ...]) -> bool:
    """Say whether the active row already has every value of `data` except the `ignore` ones."""
    with rt.db.connection() as conn:
        return _same(store.get_active(conn), data, ignore)


def change_config(rt: Runtime, data: dict[str, Any], serve: bool = True,
                  if_changed: bool = False, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate by loading the new provider; only then write the active row and notify.

    `data` is ConfigRequestSchema output. With `serve` the new provider replaces this process's
    (the API); without it the provider is closed after the check (the CLI).
    """
    data = dict(data)
    allow = bool(data.pop("allow_dimension_change", False))
    values = {k: data.get(k) for k in store.WRITABLE}
    values["backend"] = values["backend"] or "torch"  # the column's default, explicit for _same
    with rt.db.connection() as conn:  # 503 fast when the database is down, before any load
        active = store.get_active(conn)
    if if_changed and _same(active, values, ignore):
        return _result(active["id"], f"{active['model_name']} is already the active config")
    store.check_dimensions(active, values["embedding_dimensions"], allow)  # 409 before loading
    provider = rt.manager.prepare(ProviderConfig.from_row(values))  # 422 on failure
    try:
        with rt.manager.commit_lock:
            with rt.db.connection() as conn:
                row = store.activate(conn, values, allow, origin=rt.instance)
            if serve:
                rt.manager.swap(provider, row["id"])
    except BaseException:
        provider.close()
        raise
    if not serve:
        provider.close()
    rt.remember(row)
    log.info("config %s activated: provider=%s model=%s dimensions=%s backend=%s precision=%s "
             "by %s", row["id"], row["provider"], row["model_name"], row["embedding_dimensions"],
             row.get("backend"), row["precision"], row["updated_by"])
    return _result(row["id"], f"now serving {row['provider']} {row['model_name']} "
                              f"({row['embedding_dimensions']} dimensions)")


def reload_config(rt: Runtime, serve: bool = True) -> dict[str, Any]:
    """Rebuild the provider from the active row (the old one serves meanwhile); tell all workers."""
    row, _ = active_row(rt, allow_stale=False)
    if serve:
        provider = rt.manager.prepare(ProviderConfig.from_row(row))
        with rt.manager.commit_lock:
            rt.manager.swap(provider, row["id"])
    with rt.db.connection() as conn:
        store.notify(conn, {"id": row["id"], "reload": True, "origin": rt.instance})
    return _result(row["id"], f"reloaded {row['provider']} {row['model_name']}")


def list_configs(rt: Runtime, limit: int = 100) -> list[dict[str, Any]]:
    """Return the config history, newest first."""
    with rt.db.connection() as conn:
        return store.history(conn, limit)


def _result(config_id: int, message: str) -> dict[str, Any]:
    return {"success": True, "message": message, "config_id": config_id,
            "reload_required": False}
