"""Point PostgreSQL client programs (pg_dump, pg_restore, psql) at a database without a secret on
their command line (visible in `ps`), and keep secrets out of what they print.

The password travels in PGPASSWORD. Secrets libpq has no environment variable for (sslpassword,
oauth_client_secret, the SCRAM keys) travel in a connection service file: a private (0600) file in
a private temporary folder named by PGSERVICEFILE, removed when the program is done.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ConfigError
from ..settings import MASK, SECRET_PARAMS
from .programs import pg_config_dir

SERVICE = "kgmigrate"  # the section of kgmigrate's own service file


def _params(conninfo: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None


def _sysconfdir() -> Path | None:
    if os.environ.get("PGSYSCONFDIR"):
        return Path(os.environ["PGSYSCONFDIR"])
    return pg_config_dir("--sysconfdir")


def _user_service(name: str) -> dict[str, str]:
    """Return the parameters of the user's connection service `name`, found where libpq looks."""
    user_file = os.environ.get("PGSERVICEFILE") or str(Path.home() / ".pg_service.conf")
    sysconf = _sysconfdir()
    for path in (Path(user_file), sysconf / "pg_service.conf" if sysconf else None):
        if path is None or not path.is_file():
            continue
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False,
                                           comment_prefixes=("#",))
        parser.optionxform = str  # keys as written
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeError) as exc:
            raise ConfigError(f"cannot read the connection service file {path}: {exc}") from None
        if parser.has_section(name):
            return dict(parser.items(name))
    raise ConfigError(f"connection service {name!r} not found (looked in {user_file} and "
                      f"{sysconf or '?'}/pg_service.conf)")


def _service_file(folder: Path, params: dict[str, str]) -> Path:
    lines = [f"[{SERVICE}]"]
    for key, value in params.items():
        if "\n" in value or "\r" in value or value != value.strip():
            raise ConfigError(f"the {key} in the database URL starts or ends with white space or "
                              f"holds a line break: libpq cannot take it from a service file")
        lines.append(f"{key}={value}")
    path = folder / "pg_service.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def client_target(conninfo: str, app: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Yield the `--dbname=` argument (no secret in it) and the environment for a client program.

    An empty conninfo leaves libpq to the PG* environment as it is. Secrets without an
    environment variable go into a private service file that exists only inside the block.
    """
    env = dict(os.environ)
    env.setdefault("PGAPPNAME", app)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    if not conninfo:
        yield [], env
        return
    params = _params(conninfo)
    secrets = {k: params.pop(k) for k in list(params) if k in SECRET_PARAMS}
    if "password" in secrets:
        env["PGPASSWORD"] = secrets.pop("password")
    if not secrets:
        yield [f"--dbname={make_conninfo(**params)}"], env
        return
    # A conninfo names one service: the user's (named or from PGSERVICE) is copied into ours.
    named = params.pop("service", None) or os.environ.get("PGSERVICE")
    section = {**(_user_service(named) if named else {}), **secrets}
    with tempfile.TemporaryDirectory(prefix="kgmigrate-service-") as folder:  # 0700
        env["PGSERVICEFILE"] = str(_service_file(Path(folder), section))
        env.pop("PGSERVICE", None)
        yield [f"--dbname={make_conninfo(**params, service=SERVICE)}"], env


def scrub(text: str, conninfo: str) -> str:
    """Return `text` with every secret value of the conninfo (as written or URL-quoted) as ***."""
    try:
        params = _params(conninfo) if conninfo else {}
    except ConfigError:
        return text
    for key in SECRET_PARAMS & params.keys():
        value = params[key]
        if value:
            text = text.replace(value, MASK).replace(quote(value, safe=""), MASK)
    return text
