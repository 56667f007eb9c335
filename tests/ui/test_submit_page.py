"""/submit: the case report form, batch upload and the quarantine, through ``streamlit.testing.v1.AppTest``
on an empty temporary home (nothing published: submitting needs only ``$REGISTRY_HOME``), and the
form's logic in :mod:`dashboards.lib.case_form` directly.

Every submission must land through :func:`orchestration.registry.landing.submit` (the writer of ``registry
submit``), and every error must read as the command line prints it."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import orjson
import pytest

from dashboards.lib import case_form as cf
from orchestration.config import REPO_ROOT, Home
from orchestration.contract.validate import Error, validate_record
from orchestration.registry import audit, landing
from orchestration.registry.landing import submit
from orchestration.registry.quarantine import quarantine_entries
from tests.support import MINIMAL, record, run_cli, seed_case

pytestmark = [pytest.mark.xdist_group("submit_page")]

APP = str(REPO_ROOT / "dashboards" / "app.py")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def at(home):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page("app_pages/submit.py").run()
    ok(app)
    return app


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def key(path: str) -> str:
    return "cf-" + path.replace(".", "-")


def row_keys(at, lst: str, field: str) -> list[str]:
    """Widget keys of one field of every row of a list, in row order."""
    prefix = f"cf-{lst}-{field}-"
    widgets = [w for kind in ("selectbox", "number_input", "multiselect") for w in at.get(kind)]
    keys = [w.key for w in widgets if (w.key or "").startswith(prefix)]
    return sorted(keys, key=lambda k: int(k.rsplit("-", 1)[1]))


def fill_minimal(at, case_id="FORM-0001"):
    """Case id, site, source, age, sex, kidney status, diagnosis basis, one organ, outcome alive + follow-up."""
    at.text_input(key=key("case_id")).input(case_id)
    at.text_input(key=key("site_id")).input("DE-FRM")
    at.selectbox(key=key("source")).select("chart_review")
    at.number_input(key=key("patient.age_years")).set_value(71)
    at.selectbox(key=key("patient.sex")).select("female")
    at.selectbox(key=key("kidney.status")).select("ckd")
    at.selectbox(key=key("diagnosis.basis")).select("biopsy")
    (organ,) = row_keys(at, "organs", "organ")
    at.selectbox(key=organ).select("skin")
    at.selectbox(key=key("outcome.vital_status")).select("alive")
    at.number_input(key=key("outcome.followup_days")).set_value(120)
    return ok(at.run())


def inline(at, path: str) -> list[str]:
    """The messages shown inline for a field (its data-path), unescaped."""
    out = []
    for m in at.markdown:
        hit = re.search(r'<div class="cf-msg cf-err" data-path="([^"]*)"[^>]*>⚠ (.*)</div>', m.value, re.S)
        if hit and html.unescape(hit.group(1)) == path:
            text = re.sub(r"^<code>[^<]*</code>: ", "", hit.group(2))
            out.append(html.unescape(text))
    return out


def accepted(at) -> str:
    """The receipt of an accepted submission (the one success box that says so)."""
    (box,) = [x.value for x in at.success if x.value.startswith("**Accepted**")]
    return box


def texts(at) -> str:
    """Every text on the page, without the HTML of the inline messages."""
    raw = "\n".join([m.value for m in at.markdown] + [x.value for x in at.success] + [x.value for x in at.error]
                    + [x.value for x in at.info] + [x.value for x in at.warning] + [c.value for c in at.caption])
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def landed(home: Home) -> list[dict]:
    out = []
    for f in sorted(home.landing_batches.glob("*.jsonl")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines() if line.strip()]
    return out


def cli_errors(tmp_path: Path, rec: dict) -> dict[str, str]:
    """What `registry submit` prints for a record (on a home of its own): path -> message."""
    h = Home(tmp_path / "cli-home").ensure()
    f = tmp_path / "cli.json"
    f.write_text(json.dumps(rec))
    p = run_cli("submit", "--format", "json", str(f), home=h)
    (receipt,) = json.loads(p.stdout)
    return {e["path"]: e["message"] for e in receipt["errors"]}


# ----------------------------------------------------------------------------- the page


def test_page_renders_before_anything_is_published(at, home):
    assert [t.value for t in at.title] == ["Submit cases"]
    assert [t.label for t in at.tabs] == ["Case report form", "Batch upload", "Quarantine"]
    assert "registry" in at.info[0].value and "usually within seconds" in at.info[0].value
    assert not (home.published_current.exists())
    # every coded field is a picker of its vocabulary, with readable labels
    src = at.selectbox(key=key("source"))
    assert src.options == [cf.code_label("source", c) for c in cf.REF.codes("source")]
    assert "CKD, not on dialysis" in at.selectbox(key=key("kidney.status")).options
    # every comorbidity and exposure is tri-state, unknown until answered
    tri = [w for w in at.segmented_control if w.key.startswith(("cf-comorbidities-", "cf-exposures-"))]
    assert len(tri) == len(cf.REF.codes("comorbidity")) + len(cf.REF.codes("exposure"))
    assert all(w.value == "unknown" and w.options == ["Yes", "No", "Unknown"] for w in tri)
    assert at.number_input(key=key("revision")).value == 1 and at.number_input(key=key("revision")).disabled


def test_a_minimal_case_is_accepted_and_lands_through_the_shared_writer(at, home):
    fill_minimal(at)
    at.segmented_control(key=key("comorbidities.diabetes")).set_value("yes")
    at.segmented_control(key=key("exposures.warfarin")).set_value("no")
    ok(at.run())
    ok(at.button(key="cf_btn_submit").click().run())
    receipt = accepted(at)
    assert "FORM-0001" in receipt and "revision 1" in receipt and "usually within seconds" in receipt
    (env,) = landed(home)
    assert env["channel"] == "form" and env["source_file"] == "form:FORM-0001" and env["revision"] == 1
    assert env["record"] == {
        "schema_version": 1, "case_id": "FORM-0001", "revision": 1, "site_id": "DE-FRM", "source": "chart_review",
        "patient": {"age_years": 71, "sex": "female"}, "kidney": {"status": "ckd"},
        "comorbidities": {"diabetes": True}, "exposures": {"warfarin": False},  # unknown = absent
        "diagnosis": {"basis": "biopsy"}, "organs": [{"organ": "skin"}],
        "outcome": {"vital_status": "alive", "followup_days": 120},
    }
    batch = next(home.landing_batches.glob("*.jsonl")).stem
    assert batch in receipt  # the receipt names the batch
    events = [e for e in audit.read(home) if e["event"] == "submission"]
    assert [(e["case_id"], e["status"], e["channel"]) for e in events] == [("FORM-0001", "accepted", "form")]
    # the form is ready for the next case, keeping the site and the source
    assert at.text_input(key=key("case_id")).value == ""
    assert at.text_input(key=key("site_id")).value == "DE-FRM"
    assert at.selectbox(key=key("patient.sex")).value is None


def test_a_lab_unit_not_accepted_is_an_error_at_the_field_in_the_cli_words(at, home, tmp_path):
    fill_minimal(at)
    ok(at.button(key="cf_add_labs").click().run())
    (analyte,) = row_keys(at, "labs", "analyte")
    (unit,) = row_keys(at, "labs", "unit")
    (value,) = row_keys(at, "labs", "value")
    # the unit picker offers only the units accepted for the analyte
    assert at.selectbox(key=unit).disabled  # no analyte yet
    ok(at.selectbox(key=analyte).select("pth_intact").run())
    assert at.selectbox(key=unit).options == ["pg/mL", "ng/L", "pmol/L"]
    ok(at.selectbox(key=unit).select("pmol/L").run())
    at.number_input(key=value).set_value(87.0)
    # changing the analyte to one that does not accept the unit empties the unit
    ok(at.selectbox(key=analyte).select("pthrp").run())
    assert at.selectbox(key=unit).options == ["pg/mL", "ng/L"] and at.selectbox(key=unit).value is None
    # a pre-filled pair the picker would not offer (as a quarantined record brings): the analyte replaced
    # without the picker, the unit kept. It stays visible, with its error.
    ok(at.selectbox(key=analyte).select("pth_intact").run())
    ok(at.selectbox(key=unit).select("pmol/L").run())
    at.session_state[analyte] = "pthrp"
    ok(at.run())
    assert at.selectbox(key=analyte).value == "pthrp" and at.selectbox(key=unit).value == "pmol/L"
    assert at.selectbox(key=unit).options == ["pg/mL", "ng/L", "pmol/L"]
    ok(at.button(key="cf_btn_submit").click().run())
    shown = inline(at, "labs[0].unit")
    expected = cli_errors(tmp_path, cf.form_to_record({**cf.blank_form(), **_form_of(at)}))
    assert shown == [expected["labs[0].unit"]] == ['"pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)']
    assert "labs[0].unit: \"pmol/L\" is not accepted for pthrp (accepted: pg/mL, ng/L)" in texts(at)
    assert "Not submitted" in texts(at)
    assert landed(home) == [] and quarantine_entries(home) == []  # nothing landed, nothing quarantined


def _form_of(at) -> dict:
    """The form state the page holds (as it keeps it for the next visit)."""
    return at.session_state["cf_saved"]


def test_preview_shows_the_record_and_every_error_inline(at, home):
    at.text_input(key=key("case_id")).input("PV-1")
    at.number_input(key=key("patient.age_years")).set_value(140)
    at.selectbox(key=key("outcome.vital_status")).select("dead")
    ok(at.run())
    assert not inline(at, "patient.age_years")  # nothing is flagged before a preview
    ok(at.button(key="cf_btn_preview").click().run())
    assert inline(at, "patient.age_years") == ["140 is above the maximum 120"]
    assert inline(at, "site_id") == ["is required but missing"]
    assert inline(at, "organs[0].organ") == ["is required but missing"]
    assert inline(at, "outcome.followup_days") == ['is required when vital status is "dead" (give days from day 0 to death)']
    rec = json.loads(at.code[0].value)
    assert rec["case_id"] == "PV-1" and rec["patient"] == {"age_years": 140} and rec["organs"] == [{}]
    n = len(validate_record(rec))
    assert any(f"{n} problems" in e.value for e in at.error)
    # fixing a field clears its error at once
    ok(at.number_input(key=key("patient.age_years")).set_value(70).run())
    assert inline(at, "patient.age_years") == []
    assert landed(home) == []


def test_identifiers_are_left_out_when_a_record_opens_in_the_form(at, home):
    bad = record(case_id="Q-SUMMARY", mrn="12345")
    (r,) = submit(home, [("x.json", json.dumps(bad).encode())], channel="cli")
    ok(at.run())
    ok(at.button(key="cf_q_open").click().run())
    # the identifier is not carried into the form: said so in the banner, and the record is valid without it
    assert "`mrn`: is not a field of case record v1; it was left out" in at.warning[0].value
    assert not at.error


def test_a_quarantined_record_is_corrected_in_the_form_and_its_entry_resolved(at, home):
    bad = record(case_id="BAD-0100", patient={"age_years": -3, "sex": "female"}, kidney={"status": "sideways"},
                 labs=[{"analyte": "pthrp", "value": 87, "unit": "pmol/L", "day": 0}], name="Jane Doe")
    (r,) = submit(home, [("site.jsonl", (json.dumps(bad) + "\n").encode())], channel="cli")
    assert r.status == "quarantined"
    ok(at.run())
    # the quarantine tab lists it with every reason
    assert at.selectbox(key="cf_q_pick").value == r.quarantine_id
    reasons = {e.path: e.message for e in r.errors}
    for path, msg in reasons.items():
        assert msg in texts(at)
    ok(at.button(key="cf_q_open").click().run())
    # pre-filled, with the errors at their fields, in the command line's words
    assert at.session_state["cf_tab"] == "Case report form"
    assert at.text_input(key=key("case_id")).value == "BAD-0100"
    assert at.number_input(key=key("patient.age_years")).value == -3
    assert inline(at, "patient.age_years") == [reasons["patient.age_years"]]
    assert inline(at, "kidney.status") == [reasons["kidney.status"]]
    assert inline(at, "labs[0].unit") == [reasons["labs[0].unit"]]
    assert "Correcting quarantined record" in at.warning[0].value and r.quarantine_id in at.warning[0].value
    # fix it and resubmit
    at.number_input(key=key("patient.age_years")).set_value(52)
    at.selectbox(key=key("kidney.status")).select("dialysis")
    (unit,) = row_keys(at, "labs", "unit")
    at.selectbox(key=unit).select("pg/mL")
    ok(at.run())
    assert inline(at, "patient.age_years") == [] and inline(at, "labs[0].unit") == []
    ok(at.button(key="cf_btn_submit").click().run())
    receipt = accepted(at)
    assert "BAD-0100" in receipt and r.quarantine_id in receipt
    (env,) = landed(home)
    assert env["channel"] == "form" and env["record"]["patient"]["age_years"] == 52 and "name" not in env["record"]
    assert env["record"]["labs"] == [{"analyte": "pthrp", "value": 87, "unit": "pg/mL", "day": 0}]
    # the entry is resolved and kept
    (entry,) = quarantine_entries(home, with_payload=True)
    assert entry["quarantine_id"] == r.quarantine_id and entry["resolved_at"]
    assert entry["resolution"] == "corrected and resubmitted as BAD-0100 r1"
    assert json.loads(entry["payload"])["name"] == "Jane Doe"  # the original is kept as it was
    assert quarantine_entries(home, include_resolved=False) == []
    assert any(e["event"] == "quarantine_resolved" and e["quarantine_id"] == r.quarantine_id for e in audit.read(home))


def test_editing_an_existing_case_submits_the_next_revision(at, home):
    submit(home, [("seed.json", json.dumps(seed_case()).encode())], channel="cli")
    at.text_input(key="cf_load_id").input("LIT-AUTOPSY-002")
    ok(at.button(key="cf_btn_load").click().run())
    assert at.number_input(key=key("revision")).value == 2
    assert at.text_input(key=key("case_id")).value == "LIT-AUTOPSY-002" and at.text_input(key=key("case_id")).disabled
    assert "Editing case `LIT-AUTOPSY-002`" in at.info[1].value  # the case id shown as text (a code span)
    assert len(row_keys(at, "labs", "analyte")) == 23 and len(row_keys(at, "organs", "organ")) == 5
    assert at.segmented_control(key=key("comorbidities.hypercalcemia")).value == "yes"
    assert at.segmented_control(key=key("comorbidities.malignancy")).value == "no"
    assert at.segmented_control(key=key("comorbidities.diabetes")).value == "unknown"
    # nothing changed yet: a warning, not an error
    ok(at.button(key="cf_btn_preview").click().run())
    assert "nothing has changed since revision 1 yet" in texts(at)
    assert cf.same_content(json.loads(at.code[0].value), seed_case())
    # a correction: the follow-up was longer
    at.selectbox(key=key("outcome.vital_status")).select("dead")
    at.number_input(key=key("outcome.followup_days")).set_value(41)
    ok(at.run())
    ok(at.button(key="cf_btn_submit").click().run())
    assert "revision 2" in accepted(at)
    assert [(e["case_id"], e["revision"], e["channel"]) for e in landed(home)] == [("LIT-AUTOPSY-002", 1, "cli"), ("LIT-AUTOPSY-002", 2, "form")]
    latest = landing.latest_record(home, "LIT-AUTOPSY-002")
    assert latest["revision"] == 2 and latest["outcome"]["followup_days"] == 41
    assert cf.same_content({**latest, "outcome": seed_case()["outcome"]}, seed_case())  # nothing else changed


def test_loading_a_case_that_is_not_there_says_so(at, home):
    at.text_input(key="cf_load_id").input("NOPE-1")
    ok(at.button(key="cf_btn_load").click().run())
    assert "There is no accepted case NOPE-1 in the registry" in texts(at)
    assert at.number_input(key=key("revision")).value == 1


def test_a_revision_conflict_from_the_form_is_fixed_by_submitting_the_next_revision(at, home):
    submit(home, [("a.json", json.dumps(record(case_id="FORM-0002")).encode())], channel="cli")
    fill_minimal(at, case_id="FORM-0002")
    ok(at.button(key="cf_btn_preview").click().run())
    assert "already has revision 1 in the registry" in texts(at)  # a warning before submitting
    ok(at.button(key="cf_btn_submit").click().run())
    assert "Quarantined" in at.error[0].value
    (entry,) = quarantine_entries(home)
    assert entry["errors"][0]["path"] == "revision"
    ok(at.button(key="cf_next_rev").click().run())
    assert at.number_input(key=key("revision")).value == 2
    ok(at.button(key="cf_btn_submit").click().run())
    assert "revision 2" in accepted(at)
    (entry,) = quarantine_entries(home)
    assert entry["resolution"] == "corrected and resubmitted as FORM-0002 r2"


def test_batch_upload_reports_every_record(at, home):
    good, dup = record(case_id="UP-1"), record(case_id="UP-1")
    bad = record(case_id="UP-2", patient={"age_years": 140, "sex": "male"})
    files = [
        ("cases.jsonl", (json.dumps(good) + "\n" + json.dumps(bad) + "\n").encode(), "application/json"),
        ("again.json", json.dumps([dup]).encode(), "application/json"),
        ("broken.json", b'{"case_id": "UP-3",', "application/json"),
    ]
    (uploader,) = at.file_uploader
    assert uploader.accept_multiple_files and sorted(uploader.allowed_type) == [".csv", ".json", ".jsonl", ".xlsx"]  # every format (docs/import.md)
    ok(uploader.set_value(files).run())
    ok(at.button(key="cf_batch_submit").click().run())
    table = at.dataframe[0].value
    assert list(table["Status"]) == ["accepted", "quarantined", "duplicate", "quarantined"]
    assert list(table["File"]) == ["cases.jsonl", "cases.jsonl", "again.json", "broken.json"]
    assert table["Reasons"][1] == "patient.age_years: 140 is above the maximum 120"
    assert "not valid JSON" in table["Reasons"][3] and "line 1, column" in table["Reasons"][3]
    assert any(b.label == "Download CSV" for b in at.get("download_button"))
    assert {m.label: m.value for m in at.metric if m.label in ("Accepted", "Duplicates", "Quarantined")} == \
        {"Accepted": "1", "Duplicates": "1", "Quarantined": "2"}
    assert [(e["case_id"], e["channel"]) for e in landed(home)] == [("UP-1", "upload")]
    assert {e["channel"] for e in audit.read(home) if e["event"] == "submission"} == {"upload"}
    assert len(at.file_uploader[0].value or []) == 0  # a fresh uploader: the files are not sent twice


def test_an_entry_that_is_not_a_case_is_shown_as_text_and_resolved_with_a_note(at, home):
    (r,) = submit(home, [("broken.json", b"hello world")], channel="cli")
    ok(at.run())
    assert at.selectbox(key="cf_q_pick").value == r.quarantine_id
    assert not [b for b in at.button if b.key == "cf_q_open"]  # nothing to open in the form
    assert any(c.value == "hello world" for c in at.code)
    ok(at.button(key="cf_q_resolve").click().run())
    assert "Write a note first" in texts(at) and quarantine_entries(home, include_resolved=False)
    at.text_input(key="cf_q_note").input("sent by mistake; the right file was uploaded")
    ok(at.button(key="cf_q_resolve").click().run())
    (entry,) = quarantine_entries(home)
    assert entry["resolved_at"] and entry["resolution"] == "sent by mistake; the right file was uploaded"
    assert "No open quarantine entries" in texts(at)


def test_the_form_is_kept_when_visiting_another_page(at, home):
    at.text_input(key=key("case_id")).input("KEEP-1")
    ok(at.button(key="cf_add_labs").click().run())
    (analyte,) = row_keys(at, "labs", "analyte")
    ok(at.selectbox(key=analyte).select("calcium").run())
    at.switch_page("app_pages/overview.py").run()
    at.switch_page("app_pages/submit.py").run()
    ok(at)
    assert at.text_input(key=key("case_id")).value == "KEEP-1"
    (analyte,) = row_keys(at, "labs", "analyte")
    assert at.selectbox(key=analyte).value == "calcium"


# ----------------------------------------------------------------------------- the form's logic


def test_form_to_record_leaves_out_what_is_empty_and_unknown():
    state = cf.blank_form()
    state.update({
        "case_id": "  X-001 ", "site_id": "DE-X", "source": "case_report", "citation": "   ",
        "patient.age_years": 64.0, "patient.sex": "male", "patient.bmi": 31.0,
        "kidney.status": "dialysis", "kidney.dialysis_modality": "hemodialysis",
        "comorbidities.diabetes": "yes", "comorbidities.obesity": "no", "comorbidities.malignancy": "unknown",
        "diagnosis.basis": "clinical", "outcome.vital_status": "unknown", "outcome.autopsy": "no",
    })
    state["organs"] = [{"organ": "skin", "evidence": None}]
    state["labs"] = [{"analyte": "calcium", "value": 2.45, "unit": "mmol/L", "day": 0, "ref_low": None, "ref_high": None}]
    state["lesions"] = [{"site": "thigh", "laterality": None, "features": []}]
    rec = cf.form_to_record(state)
    assert rec == {
        "schema_version": 1, "case_id": "X-001", "revision": 1, "site_id": "DE-X", "source": "case_report",
        "patient": {"age_years": 64, "sex": "male", "bmi": 31}, "kidney": {"status": "dialysis", "dialysis_modality": "hemodialysis"},
        "comorbidities": {"diabetes": True, "obesity": False}, "diagnosis": {"basis": "clinical"},
        "lesions": [{"site": "thigh"}], "organs": [{"organ": "skin"}],
        "labs": [{"analyte": "calcium", "value": 2.45, "unit": "mmol/L", "day": 0}],
        "outcome": {"vital_status": "unknown", "autopsy": False},
    }
    assert isinstance(rec["patient"]["age_years"], int) and validate_record(rec) == []
    assert list(rec) == [k for k in cf.RECORD_ORDER if k in rec]


def test_an_empty_form_reports_each_missing_field_at_its_widget():
    rec = cf.form_to_record(cf.blank_form())
    by_field = cf.errors_by_field(validate_record(rec))
    assert by_field == {p: ["is required but missing"] for p in (
        "case_id", "site_id", "source", "patient.age_years", "patient.sex", "kidney.status", "diagnosis.basis",
        "organs[0].organ", "outcome.vital_status")}
    rec["organs"] = []
    assert cf.errors_by_field(validate_record(rec))["organs"] == ["must list at least one organ"]


def test_errors_by_field_places_row_errors_and_sends_the_rest_to_the_summary():
    errs = [Error("labs[2].unit", "u"), Error("lesions[0].features[1]", "f"), Error("labs[1]", "row"), Error("$", "whole"),
            Error("name", "unknown field (identifiers are not accepted)"), Error("comorbidities.gout", "unknown comorbidity"),
            Error("labs[0].colour", "unknown field")]
    assert cf.errors_by_field(errs) == {
        "labs[2].unit": ["u"], "lesions[0].features": ["lesions[0].features[1]: f"], "labs[1]": ["row"],
        cf.SUMMARY: ["whole", "name: unknown field (identifiers are not accepted)", "comorbidities.gout: unknown comorbidity",
                     "labs[0].colour: unknown field"],
    }


@pytest.mark.parametrize("rec", [MINIMAL, seed_case()], ids=["minimal", "bundled autopsy case"])
def test_a_record_survives_the_form_unchanged(rec):
    state = cf.record_to_form(rec)
    assert state["_notes"] == []
    back = cf.form_to_record(state)
    assert cf.same_content(back, rec) and back["revision"] == rec.get("revision", 1)


def test_record_to_form_keeps_what_it_can_and_says_what_it_cannot():
    bad = record(patient={"age_years": "70", "sex": "female", "bmi": True}, kidney={"status": "sideways"}, name="X",
                 labs=[{"analyte": "creatinine", "value": 100, "unit": "umol/l"}, "not a lab"],
                 comorbidities={"diabetes": "yes", "obesity": True})
    state = cf.record_to_form(bad)
    notes = dict(state["_notes"])
    assert state["patient.age_years"] == 70 and "read as the number 70" in notes["patient.age_years"]
    assert state["patient.bmi"] is None and "cannot be entered" in notes["patient.bmi"]
    assert state["kidney.status"] == "sideways"  # kept, to be shown with its error
    assert state["labs"][0]["unit"] == "µmol/L"  # the same unit, in the reference's spelling
    assert state["labs"][1]["analyte"] is None and "labs[1]" in notes
    assert state["comorbidities.diabetes"] == "unknown" and state["comorbidities.obesity"] == "yes"
    assert "name" in notes


def test_unit_choices_follow_the_analyte():
    assert cf.units_for("pthrp") == ["pg/mL", "ng/L"]
    assert cf.unit_after_analyte_change("pthrp", "pmol/L") is None
    assert cf.unit_after_analyte_change("pthrp", "ng/l") == "ng/L"
    assert cf.unit_after_analyte_change("eosinophils_pct", None) == "%"  # the only unit
    assert cf.units_for("unobtainium") == []


def test_latest_record_reads_the_landing_zone(home):
    assert landing.latest_record(home, "TEST-0001") is None
    submit(home, [("a.json", json.dumps(MINIMAL).encode())])
    submit(home, [("b.json", json.dumps({**MINIMAL, "revision": 2, "outcome": {"vital_status": "dead", "followup_days": 120}}).encode())])
    rec = landing.latest_record(home, "TEST-0001")
    assert rec["revision"] == 2 and rec["outcome"]["followup_days"] == 120
    assert landing.next_revision(home, "TEST-0001", 1) == 3 and landing.next_revision(home, "OTHER-1", 1) == 1
    assert landing.batch_of(home, "TEST-0001", 1) != landing.batch_of(home, "TEST-0001", 2)


def test_batch_rows():
    from orchestration.registry.landing import Receipt

    rows = cf.batch_rows([Receipt("f.jsonl", 2, "C-1", "quarantined", [Error("a", "b"), Error("c", "d")], 1, "q1")])
    assert rows == [{"file": "f.jsonl", "record": 2, "case_id": "C-1", "revision": 1, "status": "quarantined",
                     "reasons": "a: b | c: d", "quarantine_id": "q1"}]
