"""/submit in a real browser: headless Debian chromium driven by Playwright, against
``registry serve --no-dagster`` on an empty temporary home (nothing published: submitting needs only
``$REGISTRY_HOME``). A coordinator fills the case report form, previews and submits it, and gets a
receipt; a quarantined record is opened in the form from the Quarantine tab. Screenshots land in
``tests/artifacts/screenshots/submit-*.png``."""

from __future__ import annotations

import json

import orjson
import pytest

from dashboards import measure
from orchestration.config import Home
from orchestration.registry.landing import submit
from orchestration.registry.quarantine import quarantine_entries
from tests.support import ARTIFACTS, record

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

if not measure.CHROMIUM.exists():
    pytest.skip(f"{measure.CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)",
                allow_module_level=True)

SCREENSHOTS = ARTIFACTS / "screenshots"
BAD = record(case_id="BAD-0500", patient={"age_years": -3, "sex": "female"}, name="Jane Doe",
             labs=[{"analyte": "pthrp", "value": 87, "unit": "pmol/L", "day": 0}])


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home(tmp_path_factory.mktemp("submit-browser") / "home").ensure()
    (r,) = submit(h, [("site-export.jsonl", (json.dumps(BAD) + "\n").encode())], channel="cli")
    assert r.status == "quarantined"
    return h


@pytest.fixture(scope="module")
def server(home):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with measure.serving(home.root, log=ARTIFACTS / "submit_serve.log") as base:
        yield base


# ----------------------------------------------------------------------------- driving the form


def settle(page) -> None:
    """Wait until Streamlit has finished the rerun the last action started and drawn every widget."""
    page.wait_for_timeout(150)
    measure.wait_ready(page, 0)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stSkeleton]').length === 0", timeout=30_000)


def widget(page, key: str):
    """A widget by its Streamlit key; ``cf-labs-unit-`` style prefixes find the first row's."""
    sel = f".st-key-{key}" if not key.endswith("-") else f"[class*='st-key-{key}']"
    return page.locator(sel).first


def type_into(page, key: str, text: str) -> None:
    box = widget(page, key).locator("input, textarea").first
    box.fill(text)
    box.press("Tab")  # commits the value
    settle(page)


def choose(page, key: str, option: str) -> None:
    combo = widget(page, key).locator("input[role='combobox']")
    combo.evaluate("e => e.scrollIntoView({block: 'center'})")
    combo.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def open_submit(page, base: str) -> None:
    page.goto(f"{base}/submit")
    settle(page)
    widget(page, "cf-case_id").locator("input").wait_for()
    assert page.locator("[data-testid='stException']").count() == 0


def landed(home: Home) -> list[dict]:
    out = []
    for f in sorted(home.landing_batches.glob("*.jsonl")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines() if line.strip()]
    return out


# ----------------------------------------------------------------------------- tests


def test_fill_preview_and_submit_the_form(server, page, home):
    open_submit(page, server)
    type_into(page, "cf-case_id", "WEB-0001")
    type_into(page, "cf-site_id", "DE-WEB")
    choose(page, "cf-source", "Chart review")
    type_into(page, "cf-patient-age_years", "67")
    choose(page, "cf-patient-sex", "Female")
    choose(page, "cf-kidney-status", "Dialysis (chronic)")
    choose(page, "cf-kidney-dialysis_modality", "Hemodialysis")
    widget(page, "cf-comorbidities-diabetes").get_by_role("radio", name="Yes").click()
    settle(page)
    choose(page, "cf-diagnosis-basis", "Biopsy")
    choose(page, "cf-organs-organ-", "Skin")
    choose(page, "cf-organs-evidence-", "Histology")
    # a lab row: the unit picker offers only the units accepted for the analyte
    page.get_by_role("button", name="Add lab value").click()
    settle(page)
    choose(page, "cf-labs-analyte-", "Calcium (total)")
    type_into(page, "cf-labs-value-", "2.6")
    combo = widget(page, "cf-labs-unit-").locator("input[role='combobox']")
    combo.click()
    assert page.get_by_role("option").all_inner_texts() == ["mg/dL", "mmol/L", "mEq/L"]
    page.get_by_role("option", name="mmol/L", exact=True).click()
    settle(page)
    choose(page, "cf-outcome-vital_status", "Alive")
    type_into(page, "cf-outcome-followup_days", "180")

    page.get_by_role("button", name="Preview").click()
    settle(page)
    preview = page.locator("[data-testid='stCode']").first.inner_text()  # the form's tab comes first
    assert '"case_id": "WEB-0001"' in preview and '"unit": "mmol/L"' in preview and '"diabetes": true' in preview
    assert page.get_by_text("Ready to submit").count() == 1
    measure.screenshot(page, SCREENSHOTS / "submit-form-preview.png")

    page.get_by_role("button", name="Submit", exact=True).click()
    settle(page)
    receipt = page.locator("[data-testid='stAlert']").filter(has_text="Accepted: case")
    receipt.wait_for()
    text = receipt.inner_text()
    assert "Accepted" in text and "WEB-0001" in text and "revision 1" in text and "usually within seconds" in text
    (env,) = [e for e in landed(home) if e["case_id"] == "WEB-0001"]
    assert env["channel"] == "form"
    assert env["record"]["labs"] == [{"analyte": "calcium", "value": 2.6, "unit": "mmol/L", "day": 0}]
    assert env["record"]["kidney"] == {"status": "dialysis", "dialysis_modality": "hemodialysis"}
    # the form is empty again for the next case, with the site kept
    assert widget(page, "cf-case_id").locator("input").input_value() == ""
    assert widget(page, "cf-site_id").locator("input").input_value() == "DE-WEB"
    assert widget(page, "cf-patient-sex").locator("input").input_value() == ""
    receipt.scroll_into_view_if_needed()
    measure.screenshot(page, SCREENSHOTS / "submit-receipt.png")


def test_blocked_submission_shows_the_errors_at_their_fields(server, page, home):
    open_submit(page, server)
    type_into(page, "cf-case_id", "WEB-0002")
    type_into(page, "cf-patient-age_years", "140")
    page.get_by_role("button", name="Submit", exact=True).click()
    settle(page)
    assert page.get_by_text("Not submitted").count() == 1
    age_error = page.locator(".cf-err[data-path='patient.age_years']")
    assert age_error.inner_text().endswith("140 is above the maximum 120")
    assert not [e for e in landed(home) if e["case_id"] == "WEB-0002"]
    measure.screenshot(page, SCREENSHOTS / "submit-errors.png")


def test_a_quarantined_record_opens_in_the_form(server, page, home):
    open_submit(page, server)
    page.get_by_role("tab", name="Quarantine").click()
    settle(page)
    assert page.get_by_text('"pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)').count() >= 1
    measure.screenshot(page, SCREENSHOTS / "submit-quarantine.png")
    page.get_by_role("button", name="Open in form").click()
    settle(page)
    assert page.get_by_role("tab", selected=True).inner_text() == "Case report form"
    assert widget(page, "cf-case_id").locator("input").input_value() == "BAD-0500"
    assert page.locator(".cf-err[data-path='labs[0].unit']").inner_text().endswith(
        'labs[0].unit: "pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)')
    type_into(page, "cf-patient-age_years", "58")
    choose(page, "cf-labs-unit-", "pg/mL")
    page.get_by_role("button", name="Submit", exact=True).click()
    settle(page)
    page.locator("[data-testid='stAlert']").filter(has_text="Accepted: case").wait_for()
    (entry,) = [e for e in quarantine_entries(home) if e["case_id"] == "BAD-0500"]
    assert entry["resolution"] == "corrected and resubmitted as BAD-0500 r1"
    measure.screenshot(page, SCREENSHOTS / "submit-corrected.png")
