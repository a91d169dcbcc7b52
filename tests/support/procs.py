"""Child processes in tests: read a pipe until a line shows up; never leave one running."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.waiting import BOUND, stop_process


def read_until(stream, needle: str, bound: float = BOUND) -> tuple[str, str]:
    """Read a child's pipe until `needle` shows up; return the line holding it and all read so far.

    Raw reads of the descriptor: select() cannot see what a text wrapper has already buffered, and
    a blocking readline() would outlast the bound. Fails after `bound` seconds, or at end of file.
    """
    fd, raw = stream.fileno(), b""
    deadline = time.monotonic() + bound
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], min(left, 1.0))[0]:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        raw += chunk
        text = raw.decode("utf-8", "replace")
        at = text.find(needle)
        if at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            return text[start:end if end >= 0 else len(text)], text
    pytest.fail(f"no {needle!r} within {bound:g} s; read so far:\n"
                f"{raw.decode('utf-8', 'replace')}")


@contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Yield `proc`; after the block it is not left running: killed if need be, waited for."""
    try:
        yield proc
    finally:
        stop_process(proc, signal.SIGKILL)
