"""The last known active config row, kept on local disk so that a worker (re)started while the
database is away still knows what to serve. Written durably; read only when the database
cannot be reached; the database wins as soon as it answers again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from kgmigrate.durable import atomic_write, private_folder

log = logging.getLogger(__name__)
_TIMES = ("created_at", "updated_at")


def default_path(database_url: str | None) -> Path:
    """$XDG_STATE_HOME/kgserve/last-config-<hash of the database URL>.json (one per database)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    key = hashlib.sha256((database_url or "local").encode()).hexdigest()[:16]
    return Path(state) / "kgserve" / f"last-config-{key}.json"


def save(path: Path, row: dict[str, Any]) -> None:
    """Write `row` to `path` durably (kgserve.durable); log, never raise."""
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    try:
        private_folder(path.parent)
        atomic_write(path, json.dumps(data).encode())
    except (OSError, TypeError, ValueError) as exc:
        log.warning("cannot keep the last known config in %s: %s", path, exc)


def load(path: Path) -> dict[str, Any] | None:
    """Return the row kept in `path`, or None (missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the last known config in %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or "id" not in data or "model_name" not in data:
        return None
    for key in _TIMES:
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key])
    return data
