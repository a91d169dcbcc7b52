"""The export cache: keyed, verified, rebuilt when corrupt, crash-safe, one export for many workers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kgserve.providers.export.cache import (
    MANIFEST,
    Exporter,
    ExportSpec,
    verify,
    write_manifest,
)
from kgserve.providers.export.guard import AccuracyRefused
from tests.support.backends import cpu, loaded
from tests.support.gunicorn import start_gunicorn
from tests.support.kgs import ONNX_BODY, REPO, activate_local, call, migrate
from tests.support.waiting import stop_process, wait_for

ONNX32 = ExportSpec("onnx", "float32")


def torch_parts(folder: Path):
    """(transformer, tokenizer) of the model in `folder`, for Exporter."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return lambda: (st[0].auto_model, st.tokenizer)


def test_the_key_follows_model_files_backend_precision_and_versions(tiny_nomic_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_nomic_dir, model)
    exporter = Exporter("tiny", model, lambda: None, root=tmp_path / "cache")
    keys = {exporter.key(ExportSpec(b, p))[0] for b in ("onnx", "openvino")
            for p in ("float32", "int8")}
    assert len(keys) == 4
    doc = exporter.key(ONNX32)[1]
    assert {"torch", "transformers", "onnx"} <= set(doc["versions"])
    (model / "tokenizer_config.json").write_text(
        (model / "tokenizer_config.json").read_text().replace("}", ', "x": 1}', 1))
    assert Exporter("tiny", model, lambda: None).key(ONNX32)[0] != exporter.key(ONNX32)[0]


def test_an_entry_is_made_once_then_reused(tiny_nomic_dir, tmp_path):
    exporter = Exporter("tiny", tiny_nomic_dir, torch_parts(tiny_nomic_dir), root=tmp_path)
    first = exporter.ensure(ONNX32)
    again = exporter.ensure(ONNX32)
    assert first.made and not again.made and first.path == again.path
    for name in ("onnx/model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
                 MANIFEST):  # the transformers.js layout, plus the manifest
        assert (first.path / name).is_file()
    manifest = json.loads((first.path / MANIFEST).read_text())
    assert manifest["backend"] == "onnx" and "onnx/model.onnx" in manifest["files"]
    assert [p.name for p in first.path.parent.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.slow
def test_a_corrupt_entry_is_detected_and_rebuilt(tiny_nomic_dir, tmp_path, caplog):
    exporter = Exporter("tiny", tiny_nomic_dir, torch_parts(tiny_nomic_dir), root=tmp_path)
    entry = exporter.ensure(ONNX32)
    model = entry.path / "onnx/model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights, size unchanged
    model.write_bytes(bytes(data))
    assert not verify(entry.path, entry.key)
    rebuilt = exporter.ensure(ONNX32)
    assert rebuilt.made and verify(rebuilt.path, rebuilt.key)
    assert "does not match its manifest" in caplog.text
    (rebuilt.path / MANIFEST).write_text("{\"key\": ")  # a torn manifest is not trusted either
    assert exporter.ensure(ONNX32).made


@pytest.mark.parametrize("manifest", [
    "[]", "null", "3", '"a string"', '{"key": "k", "files": []}', '{"key": "k", "files": null}',
    '{"key": "k", "files": {"a.txt": []}}', '{"key": "k", "files": {"a.txt": {"size": "1"}}}',
    '{"key": "k", "files": {"../outside.txt": {"size": 1, "sha256": "%s"}}}',
], ids=lambda m: m[:24])
def test_a_manifest_of_the_wrong_shape_is_a_corrupt_entry(manifest, tmp_path):
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("a")
    write_manifest(entry, "k", {}, "m")
    assert verify(entry, "k")
    sha = json.loads((entry / MANIFEST).read_text())["files"]["a.txt"]["sha256"]
    (entry / MANIFEST).write_text(manifest.replace("%s", sha))
    assert verify(entry, "k") is False  # never an AttributeError or TypeError


@pytest.mark.slow
@pytest.mark.parametrize("manifest", ["[]", "null"])
def test_a_wrong_type_manifest_is_rebuilt_on_reload_and_on_a_restart(manifest, client, admin,
                                                                     make, tiny_nomic_dir,
                                                                     tmp_path, monkeypatch):
    monkeypatch.setenv("KG_MODEL_CACHE", str(tmp_path / "cache"))
    body = {**ONNX_BODY, "model_name": str(tiny_nomic_dir), "embedding_dimensions": 768}
    assert client.post("/admin/embedding/config", json=body, headers=admin).status_code == 200
    [entry] = (tmp_path / "cache").glob(f"*/onnx-float32-*/{MANIFEST}")
    entry.write_text(manifest)
    resp = client.post("/admin/embedding/config/reload", headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert isinstance(json.loads(entry.read_text()), dict)  # set aside and made again
    entry.write_text(manifest)
    restarted = make().test_client()  # a worker started on the damaged cache
    out = restarted.post("/v1/embeddings", json={"input": "hello"})
    assert out.status_code == 200, out.get_json()
    assert len(out.get_json()["data"][0]["embedding"]) == 768
    assert isinstance(json.loads(entry.read_text()), dict)


_CRASH = """
import os, sys
from pathlib import Path
from kgserve.providers.export import convert
from kgserve.providers.export.cache import Exporter, ExportSpec

def half_then_die(transformer, tokenizer, dest):
    target = dest / convert.ONNX_MODEL
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"half an onnx file")
    os.kill(os.getpid(), 9)

convert.export_onnx = half_then_die
Exporter("tiny", Path(sys.argv[1]), lambda: (None, None), root=Path(sys.argv[2])).ensure(
    ExportSpec("onnx", "float32"))
"""


@pytest.mark.slow
def test_a_crash_mid_export_leaves_nothing_a_load_trusts(tiny_nomic_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tiny_nomic_dir), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    root = next(tmp_path.iterdir())
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")]  # the half export
    exporter = Exporter("tiny", tiny_nomic_dir, torch_parts(tiny_nomic_dir), root=tmp_path)
    assert not exporter.entry_dir(ONNX32).exists()
    entry = exporter.ensure(ONNX32)  # the lock died with the process: no wait
    assert entry.made and verify(entry.path, entry.key)
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.export
def test_the_guard_refuses_a_broken_export(client, admin, kg_url, model_cache, monkeypatch,
                                           tmp_path):
    """A well-formed entry with wrong numbers (an exporter bug) is caught by the guard."""
    import onnx
    from onnx import numpy_helper

    good = loaded(cpu("onnx"))  # the session cache's MiniLM export
    source = good.export_path
    good.close()
    cache = tmp_path / "cache"
    broken = cache / source.relative_to(model_cache)
    shutil.copytree(source, broken)
    shutil.copytree(source.parent, broken.parent, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("onnx-*", "openvino-*", ".*"))
    graph = onnx.load(str(broken / "onnx/model.onnx"))
    rng = np.random.default_rng(0)
    for init in graph.graph.initializer:
        if "layer.5" in init.name and init.name.endswith("weight"):  # the last layer, scrambled
            values = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(rng.permutation(values.ravel()).reshape(
                values.shape), init.name))
    onnx.save(graph, str(broken / "onnx/model.onnx"))
    manifest = json.loads((broken / MANIFEST).read_text())
    doc = {k: manifest[k] for k in ("format", "model", "backend", "precision", "recipe",
                                    "versions")}
    (broken / MANIFEST).unlink()
    write_manifest(broken, manifest["key"], doc, manifest["model"])
    monkeypatch.setenv("KG_MODEL_CACHE", str(cache))

    resp = client.post("/admin/embedding/config", json=ONNX_BODY, headers=admin)
    assert resp.status_code == 422
    err = resp.get_json()
    assert err["error"] == "accuracy_guard_refused"
    assert "refused onnx float32" in err["message"] and "bound 0.999" in err["message"]
    body = client.get("/admin/embedding/config", headers=admin).get_json()
    assert body["id"] == 1 and body["provider"] == "openai"  # nothing changed
    with pytest.raises(AccuracyRefused):
        loaded(cpu("onnx"))


@pytest.fixture
def gunicorn_with_onnx_active(kg_url, tiny_nomic_dir, tmp_path):
    """A database whose active config is tiny-nomic on onnx, and an empty export cache."""
    activate_local(kg_url, str(tiny_nomic_dir), 768, "onnx")
    cache = tmp_path / "fresh-cache"
    log = tmp_path / "gunicorn.log"
    base, proc = start_gunicorn(kg_url, log, KG_MODEL_CACHE=str(cache))
    try:
        yield base, proc, log, cache
    finally:
        stop_process(proc)


@pytest.mark.gunicorn
def test_two_gunicorn_workers_export_once_and_both_serve(gunicorn_with_onnx_active):
    base, proc, log, cache = gunicorn_with_onnx_active
    seen: dict[int, dict] = {}

    def both_ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            code, body = call(base, "GET", "/admin/embedding/config", admin=True)
        except OSError:
            code = 0
        if code == 200:
            seen[body["model_status"]["pid"]] = body["model_status"]
        return len(seen) == 2 and all(s["state"] == "ready" for s in seen.values())

    # a generous bound on loading, not a speed assertion
    wait_for(both_ready, lambda: f"both workers to serve onnx\n{log.read_text()[-3000:]}",
             300, 0.1)
    assert {s["backend"] for s in seen.values()} == {"onnx"}
    text = log.read_text()
    exports = re.findall(r"\] kgserve\S* exporting \S+ to onnx float32", text)
    assert len(exports) == 1, text[-3000:]  # one worker exported; the other waited or found it
    entries = [p for p in next(cache.iterdir()).iterdir() if p.is_dir()]
    assert [p.name.split("-")[0] for p in entries] == ["onnx"]  # one entry, no .tmp- leftovers
    for _ in range(8):
        code, out = call(base, "POST", "/v1/embeddings", {"input": "hello"})
        assert code == 200 and len(out["data"][0]["embedding"]) == 768


def test_migration_004_adopts_rows_as_torch(db_url, tmp_path):
    """A database migrated to 003 with rows (as the old runner left it) reads them as torch."""
    import psycopg

    partial = tmp_path / "migrations"
    shutil.copytree(REPO / "schema" / "migrations", partial,
                    ignore=shutil.ignore_patterns("004_*"))
    shutil.copy(REPO / "schema" / "00_baseline.sql", tmp_path / "00_baseline.sql")
    from kgmigrate.apply.plan import make_plan
    from kgmigrate.apply.session import connect
    from kgmigrate.apply.up import apply
    from kgmigrate.settings import Settings

    def up(folder: Path) -> None:
        settings = Settings(database_url=db_url, migrations_dir=folder, backups_dir=tmp_path)
        with connect(db_url) as conn:
            apply(conn, settings, make_plan(conn, settings))

    up(partial)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE kg_api.embedding_config SET active = FALSE")
        conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                     "embedding_dimensions, precision) VALUES ('local', 'm', 384, 'float16')")
    migrate(db_url, tmp_path / "backups")
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute("SELECT precision, backend FROM kg_api.embedding_config "
                            "ORDER BY id").fetchall()
        assert rows == [("float32", "torch"), ("float16", "torch")]
        conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                     "embedding_dimensions, precision, backend, active) VALUES "
                     "('local', 'm', 384, 'int8', 'openvino', FALSE)")
        for precision, backend in (("int8", "torch"), ("bf16", "onnx"), ("float32", "tpu")):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("INSERT INTO kg_api.embedding_config (provider, model_name, "
                             "embedding_dimensions, precision, backend, active) VALUES "
                             "('local', 'm', 384, %s, %s, FALSE)", (precision, backend))


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """{path under root: permission bits} of every folder and file (symlinks left out)."""
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.lstat().st_mode)
            for p in [root, *root.rglob("*")] if not p.is_symlink()}


def test_the_cache_and_kept_files_are_private_whatever_the_umask(tiny_nomic_dir, tmp_path):
    """Exports are code the server runs: with umask 000 the cache's folders are 0700, its
    files (graphs, manifests, locks, the browser's hard link) 0600; so is the last known config."""
    from kgserve.configs import lastknown

    root = tmp_path / "not-yet" / "cache"
    with umask(0):
        exporter = Exporter("tiny", tiny_nomic_dir, torch_parts(tiny_nomic_dir), root=root)
        entry = exporter.ensure(ExportSpec("browser", "int8"))  # and its onnx float32 parent
        kept = tmp_path / "state" / "kgserve" / "last-config-x.json"
        lastknown.save(kept, {"id": 1, "model_name": "m"})
    found = modes(tmp_path)
    assert found[f"{entry.path.relative_to(tmp_path)}/{MANIFEST}"] == 0o600
    assert len([p for p in found if "onnx-float32-" in p]) > 3
    wrong = {p: oct(m) for p, m in found.items() if p != "." and
             m != (0o700 if (tmp_path / p).is_dir() else 0o600)}
    assert wrong == {}
    assert lastknown.load(kept)["id"] == 1


def test_an_entry_others_may_write_to_is_not_trusted(tiny_nomic_dir, tmp_path):
    exporter = Exporter("tiny", tiny_nomic_dir, torch_parts(tiny_nomic_dir), root=tmp_path)
    entry = exporter.ensure(ONNX32)
    assert verify(entry.path, entry.key)
    os.chmod(entry.path / "config.json", 0o666)  # the digest beside it proves nothing now
    assert not verify(entry.path, entry.key)
    rebuilt = exporter.ensure(ONNX32)
    assert rebuilt.made and stat.S_IMODE((rebuilt.path / "config.json").stat().st_mode) == 0o600
