"""`kgmigrate graph`: text, and dot / mermaid output that the real tools accept."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.browser import launch
from tests.support.kgm import REPO

MERMAID = REPO / "tools" / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"


@pytest.fixture
def branchy(kgmigrate, migrations, db):
    """001..003 applied (003 requires 001), 005 applied by a branch deployed first, 004 pending;
    a repeatable view on 005."""
    migrations.add("001_users.sql", "CREATE TABLE kgt_users (id INTEGER);\n")
    migrations.add("002_orders.sql", "CREATE TABLE kgt_orders (id INTEGER);\n")
    migrations.add("003_user_view.sql", '-- kgmigrate:requires 001_users\n'
                                        'CREATE VIEW "kgt_u""q" AS SELECT id FROM kgt_users;\n')
    migrations.add("005_audit.sql", "-- kgmigrate:requires 002 003\n"
                                    "CREATE TABLE kgt_audit (id INTEGER);\n")
    (migrations.path.parent / "repeatable").mkdir()
    (migrations.path.parent / "repeatable" / "audit view.sql").write_text(
        "-- kgmigrate:requires 005\nCREATE OR REPLACE VIEW kgt_av AS SELECT id FROM kgt_audit;\n")
    assert kgmigrate("up", "-y").exit_code == 0
    migrations.add("004_late.sql", "-- kgmigrate:requires 002_orders\n"
                                   "CREATE TABLE kgt_late (id INTEGER);\n")
    return migrations


def test_text_shows_number_order_requires_and_with_applied_the_marks(kgmigrate, branchy):
    result = kgmigrate("graph")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "001 users",
        "002 orders",
        "003 user_view          requires 001",
        "004 late               requires 002",
        "005 audit              requires 002, 003",
        "repeatable audit view  requires 005",
    ]
    lines = kgmigrate("graph", "--applied").output.splitlines()
    assert lines[0] == "001 users              [applied #1]"
    assert lines[3] == "004 late               [out-of-order]  requires 002"
    assert lines[4] == "005 audit              [applied #4]  requires 002, 003"
    assert lines[5] == "repeatable audit view  [current]  requires 005"


def _dot_svg(text: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail("Graphviz's dot is missing: `make install` installs it (apt-get install "
                    "graphviz)", pytrace=False)
    return subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("applied", [False, True])
def test_dot_output_is_accepted_by_graphviz(kgmigrate, branchy, applied):
    result = kgmigrate("graph", "--format", "dot", *(["--applied"] if applied else []))
    assert result.exit_code == 0, result.output
    svg = _dot_svg(result.output)
    assert svg.count('class="node"') == 6
    assert svg.count('class="edge"') == 4 + 5  # the spine, then the requires edges
    assert svg.count(">requires</text>") == 5
    assert ("#ffcc80" in svg) is applied  # the out-of-order file's fill
    with pytest.raises(subprocess.CalledProcessError):  # the check can fail
        _dot_svg(result.output.replace("->", "=>", 1))


@pytest.fixture(scope="module")
def mermaid_page():
    from playwright.sync_api import sync_playwright

    if not MERMAID.is_file():
        pytest.fail(f"{MERMAID} is missing: `make install` runs npm ci in tools/mermaid",
                    pytrace=False)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(path=str(MERMAID))
        page.evaluate("() => mermaid.initialize({startOnLoad: false})")
        yield page
        browser.close()


_RENDER = """async (text) => {
  try {
    await mermaid.parse(text);
    const {svg} = await mermaid.render('g' + Math.floor(Math.random() * 1e9), text);
    return {svg};
  } catch (e) { return {error: String(e.message || e)}; }
}"""


@pytest.mark.browser
@pytest.mark.parametrize("applied", [False, True])
def test_mermaid_output_parses_and_renders_in_mermaid(kgmigrate, branchy, mermaid_page, applied):
    result = kgmigrate("graph", "--format", "mermaid", *(["--applied"] if applied else []))
    assert result.exit_code == 0, result.output
    out = mermaid_page.evaluate(_RENDER, result.output)
    assert "error" not in out, out
    assert out["svg"].count("requires") == 5
    for label in ("001 users", "004 late", "005 audit", "repeatable audit view"):
        assert label in out["svg"]
    broken = mermaid_page.evaluate(_RENDER, result.output.replace("-->|requires|", "-->|", 1))
    assert "error" in broken
