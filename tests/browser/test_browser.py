"""Every dashboard page in a real browser: headless Debian chromium driven by Playwright, against
``registry serve --no-dagster`` on a registry built through the real CLI (the bundled autopsy case,
synthetic cases, one quarantined record).

Each page must finish its script with no exception shown, and the analysis pages must draw their
Plotly charts. Screenshots land in ``tests/artifacts/screenshots/<page>.png`` and the load times in
``tests/artifacts/browser_timings.json`` (reported, not asserted: see ``docs/dashboards.md``).
``make test`` installs chromium when it is missing; without it this module is skipped, saying why.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest

from dashboards import measure
from dashboards.lib import cohort
from dashboards.lib.cohort import CohortFilter
from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse import snapshot
from tests.support import ARTIFACTS, record, run_cli, seed_case, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

SCREENSHOTS = ARTIFACTS / "screenshots"
ANALYSIS = ["", "mortality", "organs", "labs", "cases", "quality"]
SEED_ID = "LIT-AUTOPSY-002"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("browser") / "home").ensure()
    d = home.root.parent
    (d / "seed.json").write_text(json.dumps(seed_case()))
    write_jsonl(d / "cohort.jsonl", list(generate_records(400, seed=3)))
    write_jsonl(d / "bad.jsonl", [record(case_id="BAD-0002", kidney={"status": "sideways"})])
    run_cli("submit", str(d / "seed.json"), str(d / "cohort.jsonl"), str(d / "bad.jsonl"), home=home)
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    return home


@pytest.fixture(scope="module")
def server(built):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with measure.serving(built.root, log=ARTIFACTS / "browser_serve.log") as base:
        yield base


TIMINGS: dict[str, float] = {}


def open_page(page, base: str, path: str, query: str = "") -> float:
    title, n = measure.PAGES[path.split("?")[0]]
    page.goto(f"{base}/{path}" + (f"?{query}" if query else ""))
    measure.wait_ready(page, n)
    return page.evaluate("() => performance.now()")


def assert_no_exception(page) -> None:
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, exc.first.inner_text()[:2000]


def cohort_size(page) -> int:
    text = page.locator("[data-testid='stSidebar'] [data-testid='stMetricValue']").first.inner_text()
    return int(text.split()[0].replace(",", ""))


# Opened in this order on purpose: a fresh server must render a deep link (not only "/") inside app.py.
@pytest.mark.parametrize("path", ["mortality", "", "organs", "labs", "cases", "quality", "submit", "sql"])
def test_page_renders_with_charts(server, page, path):
    ms = open_page(page, server, path)
    TIMINGS[path or "overview"] = round(ms)
    assert_no_exception(page)
    title, n = measure.PAGES[path]
    # inside app.py: the navigation with the registry's page titles, and the browser tab's title
    assert page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).count() == 1
    assert "Calciphylaxis Registry" in page.title() or title in page.title()
    if path in ANALYSIS:
        assert page.locator("[data-testid='stPlotlyChart']").count() >= n
        assert page.locator(".js-plotly-plot .main-svg").count() >= n
        # every chart has drawn marks (traces), not just axes
        marks = page.eval_on_selector_all("[data-testid='stPlotlyChart']", "els => els.map(e => e.querySelectorAll('g.trace, .hm').length)")
        assert marks and all(m > 0 for m in marks), marks
        assert page.get_by_text("Download CSV").count() >= 1
    if path in ("", "mortality", "organs", "labs", "cases"):
        assert page.get_by_text("Includes synthetic cases (n=400)").count() >= 1
        assert cohort_size(page) == 401
    measure.screenshot(page, SCREENSHOTS / f"{path or 'overview'}.png")
    (ARTIFACTS / "browser_timings.json").write_text(json.dumps(TIMINGS, indent=2))


def test_favicon_and_title(server, page):
    open_page(page, server, "")
    icons = page.locator("link[rel*='icon']")
    assert icons.count() >= 1
    assert page.get_by_role("heading", name="Calciphylaxis Registry").count() == 1


def test_the_filter_lives_in_the_url(server, page, built):
    open_page(page, server, "mortality")
    assert cohort_size(page) == 401
    page.locator("[data-testid='stSidebar']").get_by_text("Include synthetic cases", exact=True).click()
    page.wait_for_url("**synthetic=false**", timeout=30_000)
    time.sleep(0.3)
    measure.wait_ready(page, 2)
    assert cohort_size(page) == 1
    assert page.get_by_text("Includes synthetic cases").count() == 0
    shared = page.url
    assert parse_qs(urlparse(shared).query)["synthetic"] == ["false"]
    # the link reproduces the view in a new browser session
    other = page.context.browser.new_context().new_page()
    other.goto(shared)
    measure.wait_ready(other, 2)
    assert cohort_size(other) == 1
    assert_no_exception(other)
    other.context.close()
    # the filter stays when switching pages in the sidebar
    page.locator("[data-testid='stSidebarNav'] a").filter(has_text="Organs").click()
    page.wait_for_url("**/organs?**", timeout=30_000)
    measure.wait_ready(page, 3)
    assert cohort_size(page) == 1 and "synthetic=false" in page.url


def test_a_link_built_from_a_filter_opens_that_cohort(server, page, built):
    f = CohortFilter(sex=("female",), kidney_status=("dialysis", "ckd"), years=(2008, 2022))
    con = snapshot.connect(built)
    where, params = f.where()
    n = con.execute(f"SELECT count(*) FROM dim_cases WHERE {where}", params).fetchone()[0]
    con.close()
    assert 0 < n < 401
    open_page(page, server, "labs", cohort.query_string(f))
    assert_no_exception(page)
    assert cohort_size(page) == n


def test_the_bundled_case_in_detail(server, page):
    open_page(page, server, "cases", f"case={SEED_ID}")
    assert_no_exception(page)
    assert page.get_by_text(f"Case {SEED_ID}").count() == 1
    # the page counts as ready after two charts (measure.PAGES); the case's labs chart may be drawn
    # after them (seen once under CI load: Plotly had not drawn its title yet)
    page.wait_for_selector("text=Labs against their reference ranges", timeout=60_000)
    assert page.get_by_text("Labs against their reference ranges").count() >= 1
    page.get_by_role("tab", name="Labs (23)").click()
    assert page.get_by_text("Calcium (total)").count() >= 1
    measure.screenshot(page, SCREENSHOTS / "cases-autopsy-case.png")


def test_stratified_views(server, page):
    open_page(page, server, "mortality", "km_by=Kidney+status")
    assert_no_exception(page)
    assert page.get_by_text("Log-rank test").count() == 1
    measure.screenshot(page, SCREENSHOTS / "mortality-by-kidney-status.png")
    open_page(page, server, "labs", "analyte=Intact+PTH&units=SI&labs_by=Diabetes")
    assert_no_exception(page)
    assert page.get_by_text("pmol/L").count() >= 1
    measure.screenshot(page, SCREENSHOTS / "labs-pth-si-by-diabetes.png")
