"""What the engine tells its caller while it applies files: one callback per event, each a no-op
unless the caller overrides it (the CLI prints them; tests and kgserve's fixtures stay silent)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI builds its reporter without importing psycopg
    import psycopg

    from ..files.migrations import Migration
    from .locks.ddl import RetryNotice


class Reporter:
    """Callbacks through which `apply` and `reverse` tell their caller what happens; the default
    says nothing."""

    def baseline_applied(self, path: Path, ms: int) -> None: ...
    def checksums_filled(self, versions: list[int]) -> None: ...
    def migration_started(self, mig: Migration) -> None: ...
    def migration_applied(self, mig: Migration, ms: int) -> None: ...
    def repeatable_applied(self, mig: Migration, ms: int) -> None: ...
    def migration_reversed(self, mig: Migration, ms: int) -> None: ...
    def notice(self, label: str, diag: psycopg.errors.Diagnostic) -> None: ...
    def lock_retry(self, notice: RetryNotice) -> None: ...
