"""SQL for kg_api.embedding_config (no Flask here): read the active row, history, activate."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

CHANNEL = "kg_embedding_config"
COLUMNS = ("id", "provider", "model_name", "embedding_dimensions", "precision", "backend",
           "max_memory_mb", "num_threads", "device", "batch_size", "max_seq_length", "normalize_embeddings",
           "created_at", "updated_at", "updated_by", "active")
# The columns a client may set; the rest are filled by the database.
WRITABLE = ("provider", "model_name", "embedding_dimensions", "precision", "backend",
            "max_memory_mb", "num_threads", "device", "batch_size", "max_seq_length", "normalize_embeddings",
            "updated_by")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM kg_api.embedding_config"
_LOCK_KEY = "kg_api.embedding_config"


class NoActiveConfig(LookupError):
    """The table has no active row."""

    code = "not_configured"


class DimensionChangeRefused(Exception):
    """The new config changes the vector size and the caller did not allow it."""

    code = "dimension_change_refused"
    param = "embedding_dimensions"

    def __init__(self, old: int, new: int) -> None:
        super().__init__(
            f"embedding_dimensions would change from {old} to {new}: vectors already stored "
            f"with {old} dimensions become incompatible with new ones (re-embed them). "
            f"Send \"allow_dimension_change\": true to switch anyway.")
        self.old, self.new = old, new


def get_active(conn: psycopg.Connection) -> dict[str, Any] | None:
    """Return the active row, or None when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"{_SELECT} WHERE active = TRUE").fetchone()


def history(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Return up to `limit` rows, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"{_SELECT} ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def check_dimensions(active: dict[str, Any] | None, new_dims: int, allow: bool) -> None:
    """Raise DimensionChangeRefused if `new_dims` differs from the active row's and not `allow`."""
    if active and not allow and active["embedding_dimensions"] != new_dims:
        raise DimensionChangeRefused(active["embedding_dimensions"], new_dims)


def notify(conn: psycopg.Connection, payload: dict[str, Any]) -> None:
    """Tell every listening worker that the config changed (delivered at commit)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(payload)))


def activate(conn: psycopg.Connection, values: dict[str, Any], allow_dimension_change: bool,
             origin: str = "") -> dict[str, Any]:
    """In one transaction: deactivate the active row, insert `values` as active, NOTIFY."""
    cols = [c for c in WRITABLE if values.get(c) is not None]
    with conn.transaction():
        # Serialise writers: two concurrent activations would both pass the UPDATE and then
        # collide on the one-active unique index.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        check_dimensions(get_active(conn), values["embedding_dimensions"], allow_dimension_change)
        conn.execute("UPDATE kg_api.embedding_config SET active = FALSE WHERE active = TRUE")
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"INSERT INTO kg_api.embedding_config ({', '.join(cols)}, active) "
                f"VALUES ({', '.join(['%s'] * len(cols))}, TRUE) RETURNING {', '.join(COLUMNS)}",
                [values[c] for c in cols]).fetchone()
        notify(conn, {"id": row["id"], "origin": origin})
    return row
