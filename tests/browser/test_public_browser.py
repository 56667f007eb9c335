"""The public dashboard in a real browser: ``registry serve --public`` on a small built registry,
headless Debian chromium driven by Playwright.

Only the aggregate pages exist there: /cases, /sql, /submit and /quality are not reachable by URL
(Streamlit answers "page not found" and shows the overview instead; no case id, no SQL editor, no
upload). The pages render under the policy with suppressed cells marked, and a downloaded CSV is the
suppressed table and says so. Screenshots: tests/artifacts/screenshots/public_*.png."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dashboards import measure
from orchestration.config import REPO_ROOT
from tests.support import ARTIFACTS
from tests.ui.public_fixture import build_small_registry

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("public_browser")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

SCREENSHOTS = ARTIFACTS / "screenshots"
PUBLIC = {"": ("Calciphylaxis Registry", 3), "mortality": ("Mortality", 2), "organs": ("Organs", 2), "labs": ("Labs", 2)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_small_registry(tmp_path_factory.mktemp("public_browser"))


@pytest.fixture(scope="module")
def server(built):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = measure.free_port()
    env = {**os.environ, "REGISTRY_HOME": str(built.root),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    log = open(ARTIFACTS / "public_serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "serve", "--public", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://localhost:{port}"
        measure.wait_healthy(base, proc=proc)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def ready(page, charts: int) -> None:
    measure.wait_ready(page, charts, timeout_ms=120_000)


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def nav_links(page) -> list[str]:
    return [a.get_attribute("href") or "" for a in page.locator("[data-testid='stSidebarNav'] a").all()]


@pytest.mark.parametrize("path", ["cases", "sql", "submit", "quality"])
def test_private_pages_have_no_url(server, page, path):
    page.goto(f"{server}/{path}")
    ready(page, 0)
    page.wait_for_timeout(500)
    text = main_text(page)
    h1 = page.locator("[data-testid='stMain'] h1").first.inner_text()
    assert h1 == "Calciphylaxis Registry", f"/{path} must not exist on the public dashboard (got {h1!r})"
    assert "SYN-" not in text and "LIT-" not in text, "no case id on the public dashboard"
    assert page.locator("textarea").count() == 0, "no SQL editor"
    assert page.locator("[data-testid='stFileUploader']").count() == 0, "no upload"
    links = nav_links(page)
    assert len(links) == 4 and not any(p in h for h in links for p in ("cases", "sql", "submit", "quality")), links
    measure.screenshot(page, SCREENSHOTS / f"public_not_found_{path}.png")


@pytest.mark.parametrize("path", list(PUBLIC))
def test_public_pages_render_under_the_policy(server, page, path):
    title, charts = PUBLIC[path]
    page.goto(f"{server}/{path}")
    ready(page, charts)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stMain'] h1").first.inner_text() == title
    text = main_text(page)
    assert "minimum cell size k = 5" in text, "the policy is shown"
    # suppressed cells are marked: in the metrics, the chart labels or the tables' downloads
    svg_text = page.evaluate("() => Array.from(document.querySelectorAll(\"[data-testid='stPlotlyChart'] text\"))"
                             ".map(t => t.textContent || '').join(' ')")
    if path in ("", "organs"):
        assert "suppressed" in svg_text or "suppressed" in text, "small categories are drawn as suppressed"
    assert "Sign in" not in text and "sign in" not in text
    measure.screenshot(page, SCREENSHOTS / f"public_{path or 'overview'}.png")


def test_csv_download_is_the_suppressed_table(server, page):
    page.goto(f"{server}/")
    ready(page, 3)
    page.get_by_role("tab", name="Kidney status").click()
    buttons = page.locator("[data-testid='stDownloadButton'] button:visible")
    with page.expect_download() as dl:
        buttons.first.click()
    d = dl.value
    assert d.suggested_filename.endswith("_suppressed_k5.csv"), d.suggested_filename
    body = open(d.path(), encoding="utf-8").read()
    assert body.startswith("# suppressed table: minimum cell size k=5"), body[:200]
    rows = body.splitlines()[2:]
    for r in rows:
        for cell in r.split(",")[1:]:
            if cell.strip().isdigit():
                assert int(cell) == 0 or int(cell) >= 5, r


def test_a_narrow_filter_shows_no_figure(server, page):
    page.goto(f"{server}/mortality?sex=Male&age=50-59&kidney=Transplant&diabetes=Yes")
    ready(page, 0)
    page.wait_for_timeout(500)
    text = main_text(page)
    assert "no figures are shown" in text
    assert page.locator("[data-testid='stPlotlyChart']").count() == 0
    measure.screenshot(page, SCREENSHOTS / "public_refused.png")
