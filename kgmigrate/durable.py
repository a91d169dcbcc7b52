"""Files that survive a crash whole, and the digest of a file (kgmigrate's and kgserve's one owner).

One durability for every file either package writes for later: a temporary file in the same
folder, fsync it, rename it over the target, fsync the folder. A reader (another worker, or the
next start after a power cut) sees the old file or the whole new one, never part of one. Data
files are created private (0600) whatever the umask; a source file asks for its own mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`, durably (its folder must exist), with file mode `mode`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as out:
            if mode != 0o600:
                os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def source_mode(path: Path) -> int:
    """Return the mode a rewritten source file keeps: its own, or what the umask gives a new one."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    """Make the names in `folder` (a rename into it) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Make every file and folder under `folder` durable (before renaming it into place)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for path in [folder, *[p for p in folder.rglob("*") if p.is_dir()]]:
        fsync_dir(path)


def private_folder(folder: Path) -> Path:
    """Create `folder` and any missing parents as 0700 whatever the umask; return it."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)
    return folder


def make_private(folder: Path) -> None:
    """Make `folder` and everything under it private whatever the umask it was written with:
    folders 0700, files 0600 (symlinks are left alone)."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


READ_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content."""
    with open(path, "rb", buffering=0) as fh:
        return stream_sha256(fh)


def stream_sha256(fh: BinaryIO) -> str:
    """The sha256 of what is left to read in the binary file `fh`, read in large blocks into one
    buffer."""
    digest = hashlib.sha256()
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    while n := fh.readinto(buf):
        digest.update(view[:n])
    return digest.hexdigest()
