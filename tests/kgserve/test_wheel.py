"""The built wheel: it carries the browser runtime, builds without setuptools' warnings about data
folders, and once installed outside this checkout serves /browser/ to a real Chromium.

What is checked, honestly: the wheel is built from a clean copy of the checkout (as `make
install` leaves it: npm's files copied into kgserve/browser/vendor/) and installed with
`--no-deps` into a fresh virtual environment without system site packages. Its dependencies
(torch and the rest, large) are not installed again: a .pth file puts this suite's site-packages
after the new environment's own, where .pth files (this checkout's editable install) are not
read. The test asserts that kgserve and kgmigrate are imported from the wheel, not from here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kgserve.browser import vendored
from tests.support.browser import Page, launch
from tests.support.kgs import ADMIN_TOKEN, MINILM, REPO, activate_local, call, free_port
from tests.support.waiting import stop_process, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]
# What setuptools says when a data folder is shipped without being listed as a package.
DATA_FOLDER_WARNINGS = re.compile(r"absent from the `packages` configuration|"
                                  r"Installing '[\w.]+' as data is deprecated")
_SKIP = shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "dist", "*.egg-info",
                               ".kgdata", "__pycache__", ".pytest_cache", ".ruff_cache", "out")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel built from a clean copy of this checkout, pip's build output)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=_SKIP)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp / "dist"), str(source)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [built] = (tmp / "dist").glob("*.whl")
    return built, out.stdout + out.stderr


def test_the_wheel_carries_the_browser_runtime_and_every_data_file(wheel):
    built, log = wheel
    names = set(zipfile.ZipFile(built).namelist())
    for name in vendored.FILES:
        assert f"kgserve/browser/vendor/{name}" in names
    for wanted in ("kgserve/browser/static/index.html", "kgserve/browser/static/kgembed.js",
                   "kgserve/providers/export/data/calibration_texts.txt",
                   "kgserve/providers/export/data/probe_texts.txt"):
        assert wanted in names
    assert not [n for n in names if "node_modules" in n]
    assert not DATA_FOLDER_WARNINGS.search(log), DATA_FOLDER_WARNINGS.search(log).group(0)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (its dependencies: this suite's, see the top)."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel[0])], check=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    Path(site.strip(), "zz-suite-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([str(python), "-c", "import kgserve, kgmigrate, flask; "
                            "print(kgserve.__file__); print(kgmigrate.__file__)"],
                           cwd=venv, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where
    return python


@pytest.fixture
def served_from_wheel(installed, kg_url, tmp_path):
    """gunicorn from the fresh venv (outside this checkout) with MiniLM active; its base URL."""
    activate_local(kg_url, MINILM, 384)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(KG_DATABASE_URL=kg_url, KG_ADMIN_TOKEN=ADMIN_TOKEN, HF_HUB_OFFLINE="1")
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(installed), "-m", "gunicorn", "-w", "1", "--threads", "8",
                                 "--bind", f"127.0.0.1:{port}", "kgserve:app"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return call(base, "GET", "/embedding/config")[0] == 200
            except OSError:
                return False

        wait_for(ready, lambda: f"the wheel's server to answer\n{log.read_text()[-3000:]}")
        yield base
    finally:
        stop_process(proc)


def test_a_wheel_install_serves_the_browser_page(served_from_wheel):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = Page(browser, served_from_wheel)
        try:
            vectors = np.array(page.js(
                "async (kg, texts) => (await kg.embed(texts)).map((v) => Array.from(v))",
                ["a wheel install serves the browser page"]))
            assert vectors.shape == (1, 384)
            assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
            vendor = [u for u in page.requests if "/browser/vendor/" in u]
            assert any(u.endswith("transformers.min.js") for u in vendor), page.requests
            assert page.foreign_requests() == [] and page.errors == []
        finally:
            page.close()
            browser.close()
