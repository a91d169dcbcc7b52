"""Settings built once from options and environment, and how the database URL is resolved."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

# libpq reads these itself when no URL is given.
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
DEFAULT_TABLE = "public.schema_migrations"
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*")


@dataclass(frozen=True)
class TableName:
    """The tracking table's schema and name, as PostgreSQL reads `--table` (quotes, case folding)."""

    schema: str = "public"
    name: str = "schema_migrations"

    def __str__(self) -> str:
        return ".".join(p if _PLAIN_NAME.fullmatch(p) else '"' + p.replace('"', '""') + '"'
                        for p in (self.schema, self.name))

    @classmethod
    def parse(cls, text: str) -> TableName:
        """Read `[schema.]table` with PostgreSQL's grammar; no schema means public.

        Raises ValueError for anything but a plain, at most schema-qualified, table name.
        """
        import json

        from pglast import parser

        if not text.strip():
            raise ValueError("empty table name")
        try:
            stmts = json.loads(parser.parse_sql_json(f"SELECT FROM {text}"))["stmts"]
        except parser.ParseError as exc:
            raise ValueError(f"not a table name ({exc.args[0]})") from None
        select = stmts[0]["stmt"].get("SelectStmt", {}) if len(stmts) == 1 else {}
        items = select.get("fromClause", [])
        rv = items[0].get("RangeVar", {}) if len(items) == 1 else {}
        if (set(select) != {"fromClause", "limitOption", "op"} or not rv.get("inh")
                or set(rv) - {"schemaname", "relname", "inh", "relpersistence", "location"}):
            raise ValueError("expected a table name, optionally schema-qualified: schema.table")
        return cls(rv.get("schemaname", "public"), rv["relname"])


TRACKING_TABLE = TableName()  # public.schema_migrations
# The schema this project's baseline creates. A database that has it but no tracking table was
# built before kgmigrate tracked it (by the old runner or by hand): it never gets the baseline.
BASELINE_SCHEMA = "kg_api"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, fixed for the run."""

    database_url: str | None
    migrations_dir: Path
    backups_dir: Path
    no_baseline: bool = False
    table: TableName = TRACKING_TABLE
    # Where this schema exists without a tracking table the database is not fresh; None: only the
    # tracking table tells.
    baseline_schema: str | None = BASELINE_SCHEMA
    repeatable_dir: Path | None = None  # None: <migrations-dir>/../repeatable

    @property
    def baseline_path(self) -> Path:
        """Return `<migrations-dir>/../00_baseline.sql`."""
        return self.migrations_dir.parent / "00_baseline.sql"

    @property
    def repeatables_path(self) -> Path:
        """Return the repeatable files' folder: --repeatable-dir, else <migrations-dir>/../repeatable."""
        return self.repeatable_dir or self.migrations_dir.parent / "repeatable"

    @property
    def uses_local_db(self) -> bool:
        """Tell whether the embedded local cluster stands in for a configured database."""
        return uses_local_db(self.database_url)


def uses_local_db(configured: str | None) -> bool:
    """Tell whether no database is configured: no URL and none of libpq's PG* variables."""
    return not configured and not any(os.environ.get(v) for v in LIBPQ_ENV)


def resolve_database_url(configured: str | None, start_local: bool = False) -> str:
    """Return the conninfo to connect with (kgmigrate's and kgserve's one rule).

    The configured URL; else "" when libpq's PG* variables are set (libpq reads them itself);
    else the project-local cluster's URL, the cluster started first with `start_local`.
    """
    if configured:
        return configured
    if not uses_local_db(configured):
        return ""
    from .postgres.localdb import project_cluster

    cluster = project_cluster()
    if start_local:
        cluster.start()
    return cluster.url()


# libpq's parameters whose value is a secret: those it shows as "*" (password, sslpassword,
# oauth_client_secret) and the SCRAM keys. Never printed, never on a child's command line.
SECRET_PARAMS = frozenset({"password", "sslpassword", "oauth_client_secret", "scram_client_key",
                           "scram_server_key"})
MASK = "***"
_SECRET_KV = re.compile(r"(?<![\w])((?:" + "|".join(sorted(SECRET_PARAMS))
                        + r")\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_url(url: str | None) -> str:
    """Return a database URL or conninfo with every secret parameter's value as ***, safe to print."""
    if not url:
        return "(libpq environment)" if url == "" else "(local database)"
    if "://" not in url:
        return _SECRET_KV.sub(rf"\1{MASK}", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = f"{userinfo}@{host}"
    query = "&".join(
        f"{piece.split('=', 1)[0]}={MASK}"
        if unquote(piece.split("=", 1)[0]).strip().lower() in SECRET_PARAMS else piece
        for piece in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe_target(settings: Settings, conninfo: str) -> str:
    """Return a printable name for the database being worked on."""
    if settings.uses_local_db:
        return f"local database {mask_url(conninfo)}"
    return mask_url(conninfo)
