"""/analysis in a real browser (headless Debian chromium through Playwright, against
``registry serve --no-dagster``): each tab renders without an exception and draws its charts.
Screenshots land in ``tests/artifacts/screenshots/analysis_<tab>.png``."""

from __future__ import annotations

import json

import pytest

from dashboards import measure
from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from tests.support import ARTIFACTS, run_cli, seed_case, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

SCREENSHOTS = ARTIFACTS / "screenshots"
READY = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
         && !!document.querySelector("[data-testid='stMain'] h1");
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("analysis-browser") / "home").ensure()
    d = home.root.parent
    (d / "seed.json").write_text(json.dumps(seed_case()))
    write_jsonl(d / "cohort.jsonl", list(generate_records(300, seed=5)))
    assert run_cli("submit", str(d / "seed.json"), str(d / "cohort.jsonl"), home=home).returncode == 0
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with measure.serving(home.root, log=ARTIFACTS / "analysis_serve.log") as base:
        yield base


def _no_exception(page) -> None:
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, exc.first.inner_text()[:2000]


def test_every_tab_renders(server, page):
    page.goto(f"{server}/analysis?t1_by=kidney_status")
    page.wait_for_function(READY, timeout=120_000)
    _no_exception(page)
    assert page.get_by_role("heading", name="Analysis").count() >= 1
    assert page.get_by_text("Characteristic").count() >= 1 or page.locator("[data-testid='stDataFrame']").count() >= 1
    measure.screenshot(page, SCREENSHOTS / "analysis_table1.png")
    for tab, charts, name in (("Risk factors (Cox)", 1, "cox"), ("Competing risks", 1, "cif"), ("Wound healing", 0, "wounds")):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(500)
        page.wait_for_function(READY, timeout=120_000)
        if charts:
            page.wait_for_function(
                "() => [...document.querySelectorAll(\"[data-testid='stPlotlyChart'] .js-plotly-plot\")]"
                ".some(e => e.offsetParent !== null && e.querySelectorAll('g.trace').length > 0)", timeout=60_000)
        _no_exception(page)
        measure.screenshot(page, SCREENSHOTS / f"analysis_{name}.png")
    assert page.get_by_text("start after day 0").count() >= 1
