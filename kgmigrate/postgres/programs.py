"""Find PostgreSQL client and server programs and read their versions."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..errors import ToolError

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def pg_config_dir(option: str) -> Path | None:
    """Return the folder `pg_config <option>` prints (--bindir, --sysconfdir), None without one."""
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run([pg_config, option], capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _debian_bindirs() -> list[Path]:
    """Return /usr/lib/postgresql/*/bin, newest major first."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin")

    def major(d: str) -> float:
        try:
            return float(Path(d).parent.name)
        except ValueError:
            return 0.0

    return [Path(d) for d in sorted(dirs, key=major, reverse=True)]


def candidate_bindirs() -> list[Path]:
    """Return directories that may hold PostgreSQL programs, in search order."""
    found: list[Path] = []
    extra = os.environ.get("KG_PG_BINDIR")
    if extra:
        found.append(Path(extra))
    found.extend(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    bindir = pg_config_dir("--bindir")
    if bindir:
        found.append(bindir)
    found.extend(_debian_bindirs())
    unique: list[Path] = []
    for d in found:
        if d not in unique:
            unique.append(d)
    return unique


@functools.lru_cache(maxsize=64)
def binary_version(path: str) -> tuple[int, int]:
    """Return (major, minor) printed by `path --version`."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolError(f"cannot run {path} --version: {exc}") from exc
    m = _VERSION_RE.search(out)
    if not m:
        raise ToolError(f"cannot read the version printed by {path}: {out.strip()!r}")
    return int(m.group(1)), int(m.group(2) or 0)


def find_all(name: str) -> list[Path]:
    """Return every executable called `name` in the candidate directories."""
    hits = []
    for d in candidate_bindirs():
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            real = p.resolve()
            if real not in [h.resolve() for h in hits]:
                hits.append(p)
    return hits


def find_binary(name: str, min_major: int | None = None) -> Path:
    """Return the program `name`, the newest whose major version is at least `min_major`."""
    hits = find_all(name)
    if not hits:
        raise ToolError(
            f"PostgreSQL program '{name}' not found (looked on PATH, in `pg_config --bindir` and "
            f"/usr/lib/postgresql/*/bin); install PostgreSQL (e.g. apt-get install postgresql)")
    if min_major is None:
        return hits[0]
    versions = [(binary_version(str(h)), h) for h in hits]
    good = [(v, h) for v, h in versions if v[0] >= min_major]
    if not good:
        have = ", ".join(f"{h} ({v[0]}.{v[1]})" for v, h in versions)
        raise ToolError(f"{name} must be version {min_major} or newer to work with this server; "
                        f"found only {have}")
    good.sort(key=lambda vh: vh[0])
    # The oldest that is new enough matches the server most closely.
    return good[0][1]


def find_client(name: str, min_major: int) -> tuple[Path, str]:
    """Return a client program (pg_dump, psql) at least `min_major` and its version as text."""
    path = find_binary(name, min_major)
    major, minor = binary_version(str(path))
    if path.resolve().name == "pg_wrapper":
        # Debian's dispatcher is a Perl script started on every call; run the program it would.
        real = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
        if real.is_file() and binary_version(str(real))[0] == major:
            path = real
    return path, f"{major}.{minor}"


def find_server_bindir() -> Path:
    """Return the directory holding initdb, pg_ctl and postgres."""
    for d in candidate_bindirs():
        if all((d / n).is_file() for n in ("initdb", "pg_ctl", "postgres")):
            return d
    raise ToolError(
        "PostgreSQL server programs (initdb, pg_ctl, postgres) not found on PATH, in "
        "`pg_config --bindir` or /usr/lib/postgresql/*/bin; install the PostgreSQL server "
        "(e.g. apt-get install postgresql) or set KG_DATABASE_URL to an existing database")
