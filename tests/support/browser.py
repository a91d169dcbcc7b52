"""A real headless Chromium (Debian's `chromium`) driven by playwright, for the browser tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = "chromium is missing for the browser tests: run 'sudo apt-get install -y chromium' " \
          "(`make test` installs it when run as root), or set KG_CHROMIUM to a Chromium binary"
# Headless, sandbox off (root), and nothing that would reach the internet on its own.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The Chromium binary: KG_CHROMIUM, else `chromium` on PATH; the test fails when missing."""
    found = os.environ.get("KG_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        pytest.fail(INSTALL, pytrace=False)
    return found


def launch(playwright):
    """Start Chromium (playwright gives it a new empty --user-data-dir)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)


class Page:
    """A fresh browser context and page on kgserve's /browser/, recording every request."""

    def __init__(self, browser, base: str, path: str = "/browser/") -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(240_000)  # a first model load exports it on the server
        self.page.goto(base + path)

    def js(self, code: str, arg=None):
        """Evaluate an async arrow function `code` in the page with kgembed.js as `kg`."""
        wrapped = ("async (arg) => { const kg = await import('/browser/kgembed.js'); "
                   f"return await ({code})(kg, arg); }}")
        return self.page.evaluate(wrapped, arg)

    def foreign_requests(self) -> list[str]:
        """Requests that left kgserve's origin (a CDN, the Hugging Face hub): none expected."""
        return [u for u in self.requests if not u.startswith((self.base, "blob:", "data:"))]

    def close(self) -> None:
        self.context.close()
