"""The migration files of a git ref (`check --base REF`), read without touching the work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import KgMigrateError


class GitBaseError(KgMigrateError):
    """The base cannot be read: not a git work tree, or an unknown ref (a usage error)."""

    exit_code = 2


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True,
                              check=False)
    except OSError as exc:
        raise GitBaseError(f"--base needs git: {exc.strerror}") from None


def repo_root(directory: Path) -> Path | None:
    """Return the top of the git work tree holding `directory`; None outside one."""
    done = _git(directory, "rev-parse", "--show-toplevel")
    return Path(done.stdout.decode().strip()) if done.returncode == 0 else None


def fork_point(directory: Path, ref: str) -> str | None:
    """Return the commit where this branch left `ref` (git merge-base); None when it is `ref`'s
    own commit or there is none."""
    done = _git(directory, "merge-base", ref, "HEAD")
    tip = _git(directory, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    fork = done.stdout.decode().strip() if done.returncode == 0 else None
    return None if fork == tip.stdout.decode().strip() else fork


def files_at(directory: Path, ref: str) -> dict[str, str]:
    """Return {file name: text} of the .sql files of `directory` as they are at `ref`.

    A folder the ref does not have yet gives no files; a ref git does not know is an error.
    """
    root = repo_root(directory)
    if root is None:
        raise GitBaseError(f"--base {ref}: {directory} is not in a git work tree")
    if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise GitBaseError(f"--base {ref}: no such git commit, branch or tag (fetch it first: "
                           f"CI checkouts are often shallow, e.g. `git fetch origin main`)")
    rel = directory.resolve().relative_to(root.resolve()).as_posix()
    listing = _git(root, "ls-tree", "-z", f"{ref}:{rel}" if rel != "." else ref)
    if listing.returncode != 0:
        return {}
    blobs = {}  # name -> blob id: cat-file then reads by id, not by resolving REF:path each time
    for entry in listing.stdout.decode().split("\0"):
        meta, _, name = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and name.lower().endswith(".sql"):
            blobs[name] = parts[2]
    if not blobs:
        return {}
    batch = _git(root, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs.values())
                 .encode())
    out, pos, data = {}, 0, batch.stdout
    for name in blobs:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        out[name] = data[header_end + 1:header_end + 1 + size].decode("utf-8-sig",
                                                                     errors="replace")
        pos = header_end + 1 + size + 1
    return out
