"""Snapshot files and their JSON manifests: naming, reading, verifying, listing and pruning."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..durable import file_sha256
from ..errors import SnapshotError

CUSTOM_MAGIC = b"PGDMP"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
SUFFIX = {"custom": ".dump", "plain": ".sql"}


@dataclass(frozen=True)
class Manifest:
    """What `<snapshot>.json` records about the file beside it."""

    file: str
    sha256: str
    size: int
    format: str
    compression: int | None
    database: str
    server_version: str
    pg_dump_version: str
    schema_version: int | None
    created_at: str
    kgmigrate_version: str
    source: str
    large_objects: int = 0

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created_at)


def manifest_path(snapshot: Path) -> Path:
    """Return the manifest's path: the snapshot's name plus `.json`."""
    return snapshot.with_name(snapshot.name + ".json")


def manifest_json(m: Manifest) -> bytes:
    """Return the manifest as the bytes written to disk."""
    return (json.dumps(asdict(m), indent=2) + "\n").encode("utf-8")


def read_manifest(snapshot: Path) -> Manifest | None:
    """Return the manifest beside `snapshot`, None when there is none; a broken one is an error."""
    path = manifest_path(snapshot)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotError(f"cannot read the manifest {path}: {exc.strerror}") from None
    try:
        return _from_json(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise SnapshotError(f"the manifest {path} is not valid ({exc}); refusing to trust the "
                            f"snapshot. Move the manifest away to restore the file unverified."
                            ) from None


# The JSON types each manifest field may hold (None only where the field is optional).
_TYPES = {"size": (int,), "compression": (int, type(None)), "schema_version": (int, type(None)),
          "large_objects": (int,)}


def _from_json(data: object) -> Manifest:
    """Build a Manifest from parsed JSON; TypeError or ValueError when it is not one."""
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__ if data is not None else 'null'}, not an "
                        f"object")
    known = {f.name for f in fields(Manifest)}
    values = {k: v for k, v in data.items() if k in known}
    for name, value in values.items():
        types = _TYPES.get(name, (str,))
        if isinstance(value, bool) or not isinstance(value, types):
            raise TypeError(f"{name} is {json.dumps(value)[:40]}")
    m = Manifest(**values)
    m.created  # noqa: B018 - a time that does not parse makes the manifest invalid
    return m


def sniff_format(snapshot: Path) -> str:
    """Return 'custom' when the file starts like a pg_dump archive, else 'plain'."""
    with open(snapshot, "rb") as fh:
        return "custom" if fh.read(len(CUSTOM_MAGIC)) == CUSTOM_MAGIC else "plain"


def verify(snapshot: Path, m: Manifest) -> None:
    """Check the file's size and sha256 against its manifest; raise SnapshotError on mismatch."""
    size = snapshot.stat().st_size
    if size != m.size:
        raise SnapshotError(f"{snapshot} is {size} bytes but its manifest says {m.size}: the "
                            f"checksum does not match (the file is truncated or changed); "
                            f"refusing to restore")
    digest = file_sha256(snapshot)
    if digest != m.sha256:
        raise SnapshotError(f"{snapshot}: the checksum does not match the manifest (sha256 "
                            f"{digest[:16]}…, expected {m.sha256[:16]}…); the file is damaged or "
                            f"was changed; refusing to restore")


def plain_looks_complete(snapshot: Path) -> bool:
    """Tell whether a plain dump ends with pg_dump's completion comment (not truncated)."""
    with open(snapshot, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 4096))
        return PLAIN_TRAILER in fh.read()


def plain_hazard(snapshot: Path) -> str | None:
    """Return why a plain file could escape the one-transaction restore, or None.

    psql meta-commands (\\connect, \\!, \\set ...) and top-level COMMIT/ROLLBACK (pg_dump writes
    them around large objects) would break out of the transaction; the file is lexed as psql
    reads it (dumpscan.py), streamed, so PL/pgSQL bodies and COPY data never count.
    """
    from .dumpscan import find_hazard

    with open(snapshot, "rb") as fh:
        return find_hazard(fh)


def safe_name(database: str) -> str:
    """Return `database` reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", database) or "db"


def default_path(backups_dir: Path, database: str, fmt: str, now: dt.datetime) -> Path:
    """Return a free `snapshot_<database>_<YYYYMMDD_HHMMSS><suffix>` path in `backups_dir`."""
    stem = f"snapshot_{safe_name(database)}_{now:%Y%m%d_%H%M%S}"
    path = backups_dir / f"{stem}{SUFFIX[fmt]}"
    n = 1
    while path.exists() or manifest_path(path).exists():
        path = backups_dir / f"{stem}_{n}{SUFFIX[fmt]}"
        n += 1
    return path


@dataclass(frozen=True)
class Entry:
    """One snapshot file found in a folder."""

    path: Path
    size: int
    manifest: Manifest | None
    problem: str | None  # why the manifest cannot vouch for the file

    @property
    def created(self) -> dt.datetime:
        if self.manifest:
            try:
                return self.manifest.created
            except ValueError:
                pass
        return dt.datetime.fromtimestamp(self.path.stat().st_mtime, dt.UTC)


def list_snapshots(folder: Path) -> list[Entry]:
    """Return the *.dump and *.sql files in `folder`, newest first."""
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.iterdir():
        if path.suffix not in (".dump", ".sql") or not path.is_file():
            continue
        size = path.stat().st_size
        try:
            m, problem = read_manifest(path), None
        except SnapshotError:
            m, problem = None, "manifest unreadable"
        if m is None and problem is None:
            problem = "no manifest"
        elif m is not None and m.size != size:
            problem = f"size differs from manifest ({m.size} bytes)"
        entries.append(Entry(path, size, m, problem))
    return sorted(entries, key=lambda e: (e.created, e.path.name), reverse=True)


def snapshots_of(folder: Path, database: str) -> list[Entry]:
    """Return the default-named snapshots of `database` in `folder`, newest first."""
    pattern = re.compile(rf"snapshot_{re.escape(safe_name(database))}_\d{{8}}_\d{{6}}(_\d+)?"
                         rf"\.(dump|sql)")
    return [e for e in list_snapshots(folder) if pattern.fullmatch(e.path.name)]


def prune(folder: Path, database: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots of `database` (with manifests); return them."""
    removed = []
    for entry in snapshots_of(folder, database)[keep:]:
        manifest_path(entry.path).unlink(missing_ok=True)
        entry.path.unlink(missing_ok=True)
        removed.append(entry.path)
    return removed
