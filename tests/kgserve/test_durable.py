"""Files kgserve keeps for later: replaced whole, private whatever the umask, nothing left over."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from kgmigrate.durable import atomic_write, file_sha256
from kgserve.configs import lastknown


@pytest.fixture
def open_umask():
    """Run with umask 000: a file created with default permissions would be world-writable."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_write_replaces_the_file_whole_and_privately(tmp_path, open_umask):
    target = tmp_path / "state.json"
    target.write_text("old")
    atomic_write(target, b'{"new": true}')
    assert target.read_bytes() == b'{"new": true}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, "text, not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_last_known_config_is_kept_privately(tmp_path, open_umask):
    path = tmp_path / "kgserve" / "last-config.json"
    lastknown.save(path, {"id": 7, "model_name": "m", "provider": "local"})
    assert lastknown.load(path) == {"id": 7, "model_name": "m", "provider": "local"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["id"] == 7


def test_file_sha256_is_the_content_digest(tmp_path):
    data = os.urandom(3 * 2**20 + 5)  # more than one read block
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
