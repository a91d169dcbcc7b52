"""Exceptions kgmigrate raises; the root command (cli/__init__.py) turns them into
one-line errors."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """Return an exception's message on one line (whitespace runs as one space), else its class name."""
    return " ".join(str(exc).split()) or type(exc).__name__


class KgMigrateError(Exception):
    """An operational failure: exit code 1, message shown without a traceback."""

    exit_code = 1


class ConfigError(KgMigrateError):
    """Bad settings, a missing directory or file."""


class ConnectError(KgMigrateError):
    """The database cannot be reached."""


class MigrationFileError(KgMigrateError):
    """A migration file is badly named, duplicated, or does not parse."""


class MigrationFailed(KgMigrateError):
    """A migration raised an error while running."""


class DriftError(KgMigrateError):
    """Applied files changed since they were applied."""


class LockTimeout(KgMigrateError):
    """Another runner held the advisory lock for too long."""


class ToolError(KgMigrateError):
    """A PostgreSQL client or server program is missing or failed."""


class SnapshotError(KgMigrateError):
    """A snapshot could not be written, verified or restored."""


class LintUnavailable(KgMigrateError):
    """squawk is missing, could not start, or failed (bad config, crash)."""


class LintRefused(KgMigrateError):
    """`up --lint=error` found error findings in pending migrations."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so the same clean-up runs."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run; the message says what became of the file running then."""

    def __init__(self, message: str, by: KeyboardInterrupt) -> None:
        super().__init__(message)
        self.terminated = isinstance(by, Terminated)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process killed by it."""
        return 143 if self.terminated else 130
