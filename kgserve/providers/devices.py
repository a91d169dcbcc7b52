"""Which torch device to run on: the requested one if it exists here, else the best available."""

from __future__ import annotations

import torch

from kgserve.providers.base import DeviceUnavailable


def pick_device(requested: str | None) -> str:
    """Return the torch device to use: `requested`, or the best available (cuda, mps, cpu)."""
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind, _, index = requested.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and torch.cuda.is_available() and (
            not index or (index.isdigit() and int(index) < torch.cuda.device_count())):
        return requested
    if kind == "mps" and not index and torch.backends.mps.is_available():
        return "mps"
    if kind not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"unknown device {requested!r}; use cpu, cuda, cuda:N or mps")
    raise DeviceUnavailable(f"device {requested!r} is not available on this machine "
                            f"(available: {', '.join(available_devices())})")


def available_devices() -> list[str]:
    """List the devices torch can use here."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found
