"""The report escapes every text that comes from the data and says which snapshot it came from."""

from __future__ import annotations

from orchestration.services import report
from orchestration.services.cohort import Cohort, Filter
from tests.unit._cohorts import cohort

EVIL = "<img src=x onerror=alert(1)>"


def test_html_escapes_data_text_and_names_the_snapshot(tmp_path):
    cases = cohort(200, 3)
    cases["is_synthetic"] = False
    c = Cohort(cases=cases, filters=[Filter("site_id", EVIL)], version="V-123", published_at="2026-01-02T03:04:05",
               vocabulary={("cause_of_death", "sepsis"): EVIL, ("kidney_status", "dialysis"): EVIL}, n_registry=250)
    d = report.build_report(c)
    text = report.render_html(d)
    assert "Generated from snapshot V-123" in text
    assert EVIL not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<script" not in text
    # the numbers in the report are those of the analytics
    assert d["cox"]["n_used"] + d["cox"]["n_excluded"] == len(cases)
    report.render_pdf(d, tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"


def test_a_public_report_needs_a_policy_and_never_falls_back_to_exact_figures():
    import pytest

    c = Cohort(cases=cohort(20, 1), filters=[], version="V", published_at=None)
    with pytest.raises(ValueError):
        report.build_report(c, public=True)  # neither min_cell nor the home's policy: refused, not exact
