"""What a dump file says about itself: a custom archive's table of contents (`pg_restore -l`), a
plain dump's header comments. Used to describe a file kgmigrate did not write, and to check what
a manifest claims against the dump it vouches for."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnapshotError
from ..postgres.programs import find_client

# pg_dump opens every plain dump with these lines (the format's own header)...
PLAIN_HEADER = ("--", "-- PostgreSQL database dump", "--")
_HEAD_BYTES = 8192
_TOC_LINE = re.compile(r";\s+(Archive created at|dbname|Dumped from database version|"
                       r"Dumped by pg_dump version):?\s*(.*)")
_PLAIN_LINE = re.compile(r"-- (Dumped from database version|Dumped by pg_dump version) (.*)")


@dataclass(frozen=True)
class DumpInfo:
    """What the dump records about itself; None where its format does not record it."""

    format: str
    database: str | None
    server_version: str | None
    pg_dump_version: str | None
    created: dt.datetime | None
    size: int

    def claims(self) -> str:
        """Return what the file claims to be, in words (for a prompt about an unverified file)."""
        return (f"a pg_dump {self.pg_dump_version or '(unknown version)'} {self.format} dump of "
                f"database {self.database or '(not recorded in a plain dump)'}, server "
                f"{self.server_version or '(unknown)'}"
                + (f", taken {self.created:%Y-%m-%d %H:%M:%S} UTC" if self.created else ""))


def _version(text: str) -> str:
    """Return the leading version number of `15.18 (Debian 15.18-1)`."""
    return text.split()[0] if text.split() else text


def read_custom(path: Path) -> DumpInfo:
    """Read a custom archive's header with `pg_restore -l` (times in UTC)."""
    pg_restore, _ = find_client("pg_restore", 0)
    proc = subprocess.run([str(pg_restore), "--list", str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", check=False,
                          env={**os.environ, "TZ": "UTC"})
    if proc.returncode != 0:
        raise SnapshotError(f"pg_restore --list cannot read the file (exit {proc.returncode}): "
                            f"{proc.stderr.strip() or 'no message'}; refusing to restore")
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith(";"):
            if line.strip():
                break  # the header comes before the entries
            continue
        m = _TOC_LINE.match(line)
        if m:
            found.setdefault(m.group(1), m.group(2).strip())
    created = None
    if stamp := found.get("Archive created at"):
        try:
            created = dt.datetime.strptime(stamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S"
                                           ).replace(tzinfo=dt.UTC)
        except ValueError:
            created = None
    return DumpInfo("custom", found.get("dbname"),
                    _version(found.get("Dumped from database version", "")) or None,
                    _version(found.get("Dumped by pg_dump version", "")) or None,
                    created, path.stat().st_size)


def read_plain(path: Path) -> DumpInfo:
    """Read a plain dump's header comments; raise SnapshotError when it has none of pg_dump's."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES).decode("utf-8", "replace").splitlines()
    lines = [ln.rstrip("\r") for ln in head]
    found = dict(m.groups() for ln in lines if (m := _PLAIN_LINE.match(ln)))
    if tuple(lines[:3]) != PLAIN_HEADER or "Dumped by pg_dump version" not in found:
        raise SnapshotError(f"{path} does not start with pg_dump's header (-- PostgreSQL "
                            f"database dump, -- Dumped by pg_dump version ...): it is not a "
                            f"pg_dump file; refusing to restore")
    return DumpInfo("plain", None, _version(found.get("Dumped from database version", "")) or None,
                    _version(found["Dumped by pg_dump version"]), None, path.stat().st_size)


def read_info(path: Path, fmt: str) -> DumpInfo:
    """Return what the dump at `path` (of format `fmt`) records about itself."""
    return read_custom(path) if fmt == "custom" else read_plain(path)
