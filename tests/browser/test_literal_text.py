"""Submitted and URL-supplied text is shown as text in a real browser (issue 15): a case id, a file
name or a `?case=` value written as Markdown or HTML renders literally, loads no image and makes no
link. The canary addresses point at a closed port on this machine; any request to them fails the test."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from dashboards import measure
from orchestration.config import Home
from orchestration.registry.landing import submit
from tests.support import ARTIFACTS, record, run_cli, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

CANARY = "127.0.0.1:9"
HOSTILE_ID = f"![beacon](http://{CANARY}/case.png) <img src=http://{CANARY}/html.png> **bold**"
HOSTILE_FILE = f"[export](http://{CANARY}/link) :red[site].jsonl"
HOSTILE_URL_CASE = f"![u](http://{CANARY}/url.png)"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home(tmp_path_factory.mktemp("literal") / "home").ensure()
    good = tmp_path_factory.mktemp("literal-in") / "good.jsonl"
    write_jsonl(good, [record(case_id="LIT-0001")])
    assert run_cli("submit", str(good), home=h).returncode == 0
    assert run_cli("build", home=h).returncode == 0
    (r,) = submit(h, [(HOSTILE_FILE, (json.dumps(record(case_id=HOSTILE_ID)) + "\n").encode())], channel="cli")
    assert r.status == "quarantined"
    return h


@pytest.fixture(scope="module")
def server(home):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with measure.serving(home.root, log=ARTIFACTS / "literal_serve.log") as base:
        yield base


def _watch(page) -> list[str]:
    hits: list[str] = []
    page.on("request", lambda req: hits.append(req.url) if CANARY in req.url else None)
    return hits


def _no_rendered_markup(page) -> None:
    assert page.locator(f"img[src*='{CANARY}']").count() == 0
    assert page.locator(f"a[href*='{CANARY}']").count() == 0


def test_the_quarantine_tab_shows_a_hostile_case_id_and_file_name_as_text(server, page):
    hits = _watch(page)
    page.goto(f"{server}/submit")
    measure.wait_ready(page, 0)
    page.get_by_role("tab", name="Quarantine").click()
    page.wait_for_timeout(1500)
    measure.wait_ready(page, 0)
    body = page.locator("[data-testid='stMain']").inner_text()
    assert HOSTILE_ID in body  # literally, every character
    assert HOSTILE_FILE in body
    _no_rendered_markup(page)
    measure.screenshot(page, ARTIFACTS / "screenshots" / "literal-quarantine.png")
    assert hits == []


def test_a_case_parameter_in_the_url_is_shown_as_text(server, page):
    hits = _watch(page)
    page.goto(f"{server}/cases?case={quote(HOSTILE_URL_CASE)}")
    measure.wait_ready(page, 0)
    page.wait_for_timeout(1500)
    body = page.locator("[data-testid='stMain']").inner_text()
    assert f"There is no case {HOSTILE_URL_CASE}" in body or HOSTILE_URL_CASE in body
    _no_rendered_markup(page)
    measure.screenshot(page, ARTIFACTS / "screenshots" / "literal-cases-url.png")
    assert hits == []
