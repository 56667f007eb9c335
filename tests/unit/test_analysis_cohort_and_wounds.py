"""--filter COLUMN=CODE (whitelist, vocabulary, bound parameters) and wound-healing counts."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from orchestration.analytics import wounds
from orchestration.services.cohort import CohortError, parse_filters, where_clause
from tests.unit._cohorts import cohort


@pytest.fixture
def con():
    c = duckdb.connect(":memory:")
    c.execute("""CREATE TABLE dim_cases AS SELECT * FROM (VALUES
        ('A', 'female', 'dialysis', TRUE,  '70-79', 'S1'),
        ('B', 'male',   'dialysis', NULL,  '70-79', 'S1'),
        ('C', 'female', 'ckd',      FALSE, '60-69', 'S2'),
        ('D', NULL,     'unknown',  TRUE,  '70-79', 'S2'),
        ('E', 'unknown', NULL,      TRUE,  '50-59', 'S2')
    ) t(case_id, sex, kidney_status, warfarin, age_band, site_id)""")
    yield c
    c.close()


def ids(con, items):
    where, params = where_clause(con, parse_filters(items))
    return [r[0] for r in con.execute(f"SELECT case_id FROM dim_cases d WHERE {where} ORDER BY 1", params).fetchall()]


def test_filters_combine_with_and_and_unknown_matches_null_and_the_code(con):
    assert ids(con, ["kidney_status=dialysis"]) == ["A", "B"]
    assert ids(con, ["kidney_status=dialysis", "warfarin=true"]) == ["A"]
    assert ids(con, ["warfarin=unknown"]) == ["B"]
    assert ids(con, ["warfarin=false"]) == ["C"]  # unknown is never "no"
    assert ids(con, ["sex=unknown"]) == ["D", "E"]
    assert ids(con, ["kidney_status=unknown"]) == ["D", "E"]
    assert ids(con, ["age_band=70-79", "sex=female"]) == ["A"]
    assert ids(con, ["site_id=S2"]) == ["C", "D", "E"]
    assert ids(con, []) == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("bad, message", [
    ("kidney=dialysis", "unknown column"),
    ("case_id=A", "unknown column"),
    ("sex=robot", "unknown value"),
    ("warfarin=yes please", "unknown value"),
    ("sex", "expected COLUMN=CODE"),
    ("sex=female' OR 1=1 --", "unknown value"),
    ("index_year=1999; DROP TABLE x", "not a year"),
])
def test_bad_filters_are_one_line_errors(bad, message):
    with pytest.raises(CohortError, match=message) as e:
        parse_filters([bad])
    assert "\n" not in str(e.value)


def test_unknown_site_is_an_error_and_text_is_a_parameter(con):
    with pytest.raises(CohortError, match="site_id: unknown value"):
        ids(con, ["site_id=S1' OR '1'='1"])


def test_wound_healing_counts():
    cases = cohort(300, 4)
    treatments = pd.DataFrame({"case_id": ["C00001", "C00001", "C00002", "C00003", "NOT-IN-COHORT"],
                               "treatment": ["sodium_thiosulfate", "wound_care", "sodium_thiosulfate", "wound_care", "x"]})
    rows = wounds.healing_by_lesion_distribution(cases)
    heal = cases["wound_healing"].fillna("unknown")
    for r in rows[:-1]:
        sel = cases["lesion_distribution"] == r["group"]
        assert r["n"] == int(sel.sum())
        assert r["n_complete"] == int((heal[sel] == "complete").sum())
        assert r["n_unknown"] == int((heal[sel] == "unknown").sum())
        assessed = int(heal[sel].isin(["complete", "partial", "none"]).sum())
        assert r["pct_complete_of_assessed"] == pytest.approx(100 * r["n_complete"] / assessed)
    assert rows[-1]["group"] == "all" and rows[-1]["n"] == len(cases)
    by_t = {r["group"]: r for r in wounds.healing_by_treatment(cases, treatments)}
    assert by_t["sodium_thiosulfate"]["n"] == 2 and by_t["wound_care"]["n"] == 2
    assert "x" not in by_t
    assert by_t[wounds.NO_TREATMENT]["n"] == len(cases) - 3
    assert "start after day 0" in wounds.TREATMENT_CAUTION
