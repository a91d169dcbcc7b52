"""Take snapshots: stream pg_dump into a hidden file while hashing, then rename it into place.

Every file written is 0600 (the dump from mkstemp, the manifest created so), whatever the umask.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..durable import fsync_dir
from ..errors import SnapshotError, Terminated
from ..postgres.clientenv import client_target, scrub
from ..postgres.programs import find_client
from ..settings import mask_url
from .dbfacts import DbFacts
from .manifest import Manifest, default_path, manifest_json, manifest_path, prune

FORMATS = ("custom", "plain")
# gzip level for the custom format: nearly as small as pg_dump's default level 6 in a fraction
# of the time (bench/bench_snapshot.py measures the levels).
DEFAULT_COMPRESSION = 1
CHUNK = 1 << 20
_PARTIAL_PREFIX = ".kgmigrate-partial-"


@dataclass(frozen=True)
class Snapshot:
    """A snapshot written to disk."""

    path: Path
    manifest: Manifest
    seconds: float
    removed: list[Path]


def dump_command(pg_dump: Path, target: list[str], fmt: str, compression: int | None) -> list[str]:
    """Return the pg_dump argv for a `client_target` (no secret in it)."""
    argv = [str(pg_dump), f"--format={fmt}", "--no-password"]
    if fmt == "custom" and compression is not None:
        argv.append(f"--compress={compression}")
    return [*argv, *target]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into Terminated (a KeyboardInterrupt) meanwhile, so the partial file is removed."""
    def handler(signum, frame):
        raise Terminated

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _stream(proc: subprocess.Popen, out: int) -> tuple[str, int]:
    """Copy the child's stdout to the fd `out`; return its sha256 and size."""
    src = proc.stdout.fileno()
    with contextlib.suppress(OSError):
        fcntl.fcntl(src, fcntl.F_SETPIPE_SZ, CHUNK)  # fewer, larger reads
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    while n := os.readv(src, [buf]):
        chunk = view[:n]
        h.update(chunk)
        done = 0
        while done < n:
            done += os.write(out, chunk[done:])
        size += n
    return h.hexdigest(), size


def _place(tmp_dump: Path, tmp_manifest: Path, final: Path) -> None:
    """Rename the dump, then its manifest, into place; on failure leave neither."""
    if final.exists() or manifest_path(final).exists():
        raise SnapshotError(f"{final} already exists; choose another name or remove it first")
    os.rename(tmp_dump, final)
    try:
        os.rename(tmp_manifest, manifest_path(final))
    except OSError:
        final.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def private_folder(folder: Path, own: bool) -> None:
    """Create `folder` (0700 whatever the umask); make it 0700 if it is kgmigrate's own (`own`).

    Snapshots hold the whole database: nobody else may read them, or swap one for a file of
    their own.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # the umask can only remove bits
    if own and folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)


def take_snapshot(conninfo: str, facts: DbFacts, backups_dir: Path, output: Path | None = None,
                  fmt: str = "custom", compression: int | None = DEFAULT_COMPRESSION,
                  keep: int | None = None) -> Snapshot:
    """Dump the database to a verified snapshot file with its manifest beside it."""
    if fmt not in FORMATS:
        raise SnapshotError(f"unknown snapshot format {fmt!r}; use custom or plain")
    if fmt == "plain" and facts.large_objects:
        raise SnapshotError(f"the database holds {facts.large_objects} large object(s); a plain "
                            f"dump writes them in transactions of their own and could not be "
                            f"restored atomically: use --format custom")
    pg_dump, dump_version = find_client("pg_dump", facts.server_major)
    now = dt.datetime.now(dt.UTC)
    final = output or default_path(backups_dir, facts.database, fmt, now)
    folder = final.parent
    try:
        private_folder(folder, own=folder.resolve() == backups_dir.resolve())
    except OSError as exc:
        raise SnapshotError(f"cannot create the folder {folder}: {exc.strerror}") from None
    if final.exists():
        raise SnapshotError(f"{final} already exists; choose another name or remove it first")
    t0 = time.perf_counter()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SnapshotError(f"cannot write in {folder}: {exc.strerror}") from None
    tmp_dump = Path(tmp_name)
    tmp_manifest = tmp_dump.with_name(tmp_dump.name + ".json")
    placed = False
    try:
        with (_sigterm_as_interrupt(), tempfile.TemporaryFile() as errfile,
              client_target(conninfo, "kgmigrate snapshot") as (target, env)):
            argv = dump_command(pg_dump, target, fmt, compression if fmt == "custom" else None)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errfile, env=env, bufsize=0)
            try:
                digest, size = _stream(proc, fd)
            except BaseException:
                proc.kill()  # it may be blocked on a lock, not writing
                raise
            finally:
                proc.stdout.close()
                rc = proc.wait()
            if rc != 0:
                errfile.seek(0)
                reason = scrub(errfile.read().decode("utf-8", "replace").strip(), conninfo)
                raise SnapshotError(f"pg_dump failed (exit {rc}) for {mask_url(conninfo)}: "
                                    f"{reason or 'no message'}; no snapshot was written")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        manifest = Manifest(
            file=final.name, sha256=digest, size=size, format=fmt,
            compression=compression if fmt == "custom" else None, database=facts.database,
            server_version=facts.server_version, pg_dump_version=dump_version,
            schema_version=facts.schema_version, created_at=now.isoformat(),
            kgmigrate_version=__version__, source=mask_url(conninfo),
            large_objects=facts.large_objects)
        with os.fdopen(os.open(tmp_manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                       "wb") as fh:
            fh.write(manifest_json(manifest))
            fh.flush()
            os.fsync(fh.fileno())
        _place(tmp_dump, tmp_manifest, final)
        placed = True
    except OSError as exc:
        raise SnapshotError(f"cannot write the snapshot in {folder}: {exc}; no snapshot was "
                            f"written") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if not placed:
            tmp_dump.unlink(missing_ok=True)
            tmp_manifest.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    removed = prune(folder, facts.database, keep) if keep is not None else []
    return Snapshot(final, manifest, seconds, removed)
