"""The dashboards' page logic, with ``streamlit.testing.v1.AppTest``, over a registry built through
the real ``registry`` command (the bundled autopsy case, 240 synthetic cases, one quarantined
record). Charts are opaque to AppTest (the browser test looks at them); here every page must run
without an exception, show the cohort's size, and agree with ``orchestration.analytics.stats`` and the marts."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest

from dashboards import queries
from dashboards.lib import cohort, labels
from dashboards.lib.cohort import CohortFilter
from orchestration.analytics import stats
from orchestration.config import REPO_ROOT, Home
from orchestration.warehouse import snapshot
from tests.support import DASHBOARD_COHORT as N_SYNTHETIC

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboards")]

APP = str(REPO_ROOT / "dashboards" / "app.py")
PAGES = ["overview", "mortality", "organs", "labs", "cases", "quality", "submit", "sql"]
ANALYSIS = ["overview", "mortality", "organs", "labs", "cases", "quality"]
SEED_ID = "LIT-AUTOPSY-002"


@pytest.fixture
def app(built, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    return AppTest.from_file(APP, default_timeout=120)


@pytest.fixture(scope="module")
def con(built):
    c = snapshot.connect(built)
    yield c
    c.close()


@pytest.fixture(scope="module")
def cases(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM dim_cases").df()


def open_page(at, page: str):
    at.run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cohort_metric(at) -> int:
    (m,) = [m for m in at.sidebar.metric if m.label == "Cohort"]
    return int(m.value.split()[0].replace(",", ""))


def text_of(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [w.value for w in at.warning] + [c.value for c in at.caption]
                     + [i.value for i in at.info])


# ----------------------------------------------------------------------------- every page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(app, page):
    at = open_page(app, page)
    assert at.title, "every page has a title"
    if page in ANALYSIS:
        assert at.get("plotly_chart"), f"/{page} shows no chart"
        assert at.dataframe, f"/{page} shows no table"
        # every table has its CSV download
        assert len(at.get("download_button")) >= len(at.dataframe)
    if page == "sql":
        assert at.text_area and at.button, "/sql has an editor and a Run button"
    if page == "submit":
        assert at.tabs, "/submit has its form, upload and quarantine tabs"


@pytest.mark.parametrize("page", ["overview", "mortality", "organs", "labs", "cases"])
def test_cohort_size_is_always_visible(app, page, cases):
    at = open_page(app, page)
    assert cohort_metric(at) == len(cases)
    assert f"Cohort: {len(cases):,} cases" in text_of(at)


def test_synthetic_cases_are_labelled_when_included(app, cases):
    at = open_page(app, "overview")
    n_syn = int(cases["is_synthetic"].sum())
    assert n_syn == N_SYNTHETIC
    assert any(f"Includes synthetic cases (n={n_syn:,})" in w.value for w in at.warning)


def test_real_cases_only_drops_the_banner(app, cases):
    app.query_params["synthetic"] = "false"
    at = open_page(app, "mortality")
    assert cohort_metric(at) == int((~cases["is_synthetic"]).sum()) == 1
    assert not any("Includes synthetic" in w.value for w in at.warning)
    assert at.sidebar.toggle(key="synthetic").value is False


# ----------------------------------------------------------------------------- the filter and the URL


def test_filter_comes_from_the_query_string(app, cases):
    app.query_params.update({"sex": ["Female", "Male"], "kidney": "Dialysis", "diabetes": "Yes", "years": ["2010", "2020"]})
    at = open_page(app, "overview")
    expected = cases[cases["sex"].isin(["female", "male"]) & (cases["kidney_status"] == "dialysis") & (cases["diabetes"] == True)  # noqa: E712
                     & cases["index_year"].between(2010, 2020)]
    assert 0 < len(expected) < len(cases)
    assert cohort_metric(at) == len(expected)
    assert at.sidebar.multiselect(key="sex").value == ["female", "male"]
    assert at.sidebar.selectbox(key="diabetes").value == "yes"
    assert tuple(at.sidebar.slider(key="years").value) == (2010, 2020)
    # the same filter through the plain encoder gives the same cohort
    f = cohort.from_query(at.query_params)
    assert f == CohortFilter(sex=("female", "male"), kidney_status=("dialysis",), diabetes="yes", years=(2010, 2020))
    assert cohort.from_query(cohort.to_query(f)) == f
    assert cohort.to_query(f) == {k: ([v] if isinstance(v, str) else v) for k, v in at.query_params.items()}
    # codes work too, in any case
    assert cohort.from_query({"sex": ["female", "MALE"], "kidney": "dialysis", "diabetes": "yes", "years": ["2010", "2020"]}) == f


def test_filter_follows_the_user_across_pages(app, cases):
    at = open_page(app, "overview")
    at.sidebar.multiselect(key="kidney").set_value(["dialysis"]).run()
    n = int((cases["kidney_status"] == "dialysis").sum())
    assert cohort_metric(at) == n
    at.switch_page("app_pages/mortality.py").run()
    assert not at.exception
    assert cohort_metric(at) == n
    at.switch_page("app_pages/quality.py").run()  # no filter there ...
    at.switch_page("app_pages/labs.py").run()  # ... and it is back on the next analysis page
    assert cohort_metric(at) == n


def test_encoding_round_trips():
    f = CohortFilter(sex=("male", "female"), age_band=("70-79",), kidney_status=("ckd", "aki"), diabetes="no", warfarin="unknown",
                     visceral="yes", lesion_distribution=("central",), site=("DE-AAC",), years=(2020, 2011), include_synthetic=False)
    assert f.sex == ("female", "male") and f.years == (2011, 2020)
    q = cohort.to_query(f)
    assert q["sex"] == ["Female", "Male"] and q["kidney"] == ["AKI", "CKD"] and q["diabetes"] == ["No"]
    assert q["synthetic"] == ["false"] and q["years"] == ["2011", "2020"]
    assert cohort.from_query(q) == f
    assert cohort.from_query(parse_qs(cohort.query_string(f))) == f
    assert cohort.to_query(CohortFilter()) == {} and cohort.query_string(CohortFilter()) == ""
    assert cohort.from_query({"sex": "nonsense", "diabetes": "maybe", "years": ["x", "2"]}) == CohortFilter()


def test_filter_sql_matches_pandas(con, cases):
    combos = [
        CohortFilter(),
        CohortFilter(sex=("female",)),
        CohortFilter(diabetes="unknown"),
        CohortFilter(warfarin="no", visceral="no"),
        CohortFilter(age_band=("70-79", "80-89"), lesion_distribution=("central", "mixed")),
        CohortFilter(years=(2015, 2018), include_synthetic=True),
        CohortFilter(include_synthetic=False),
    ]
    for f in combos:
        where, params = f.where()
        n = con.execute(f"SELECT count(*) FROM dim_cases WHERE {where}", params).fetchone()[0]
        m = pd.Series(True, index=cases.index)
        if f.sex:
            m &= cases["sex"].isin(f.sex)
        if f.age_band:
            m &= cases["age_band"].isin(f.age_band)
        if f.lesion_distribution:
            m &= cases["lesion_distribution"].isin(f.lesion_distribution)
        if f.diabetes == "unknown":
            m &= cases["diabetes"].isna()
        if f.warfarin == "no":
            m &= cases["warfarin"].eq(False).fillna(False)
        if f.visceral == "no":
            m &= ~cases["visceral_involvement"]
        if f.years:
            m &= cases["index_year"].between(*f.years).fillna(False)
        if not f.include_synthetic:
            m &= ~cases["is_synthetic"]
        assert n == int(m.sum()), f


# ----------------------------------------------------------------------------- the numbers


@pytest.mark.parametrize("stratum", [s for s in stats.STRATA])
def test_mortality_matches_the_shared_statistics_and_the_marts(con, cases, stratum):
    res = queries.mortality_queries(con, CohortFilter(), None if stratum == "all" else stratum)
    ours = res["by_group"]
    theirs = stats.mortality_by(cases, stratum, with_ci=True)
    assert len(ours) == len(theirs)
    # same groups (ours are labelled), same numbers
    vocab = queries.vocabulary(con)
    theirs["label"] = [("All cases" if stratum == "all" else labels.stratum_value_label(stratum, _marts_value(stratum, v), vocab))
                       for v in theirs["stratum_value"]]
    merged = ours.merge(theirs, left_on="group", right_on="label", suffixes=("", "_m"))
    assert len(merged) == len(ours)
    for col in ("n_cases", "n_known_outcome", "n_deaths", "case_fatality", "survival_30d", "survival_365d", "ci_lower_365d",
                "ci_upper_365d", "median_survival_days"):
        for a, b in zip(merged[col], merged[col + "_m"]):
            assert _same(a, b), (stratum, col, a, b)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "mart_mortality" in tables:
        mart = con.execute("SELECT * FROM mart_mortality WHERE stratum = ?", [stratum]).df()
        m2 = theirs.merge(mart, on="stratum_value", suffixes=("", "_mart"))
        assert len(m2) == len(theirs)
        for col in ("n_cases", "n_deaths", "case_fatality", "survival_365d", "median_survival_days"):
            for a, b in zip(m2[col], m2[col + "_mart"]):
                assert _same(a, b), (stratum, col, a, b)


def _marts_value(stratum: str, v: str):
    if v == "unknown":
        return None
    if stratum in ("visceral_involvement", "warfarin"):
        return v == "true"
    return v


def _same(a, b) -> bool:
    na = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    nb = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if na or nb:
        return na and nb
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def test_km_curve_and_logrank_come_from_stats(con, cases):
    f = CohortFilter(sex=("female",))
    res = queries.mortality_queries(con, f, "kidney_status")
    sub = cases[cases["sex"] == "female"]
    curve = res["curves"][res["curves"]["group"] == "Dialysis"].drop(columns="group").reset_index(drop=True)
    d = sub[sub["kidney_status"] == "dialysis"]
    pd.testing.assert_frame_equal(curve, stats.kaplan_meier(d["followup_days"], d["died"]), check_dtype=False)
    grp = sub["kidney_status"].fillna("unknown")
    assert _same(res["logrank_p"], stats.logrank_p(sub["followup_days"], sub["died"], grp))
    assert res["at_risk"].iloc[:, 1].sum() == int(sub["died"].notna().sum() - (sub["died"].notna() & sub["followup_days"].isna()).sum())


def test_mortality_page_shows_the_statistics(app, cases):
    at = open_page(app, "mortality")
    s = stats.survival_summary(cases["followup_days"], cases["died"])
    assert at.selectbox(key="km_by").value == queries.DEFAULT_MORTALITY_STRATUM
    at.selectbox(key="km_by").set_value("none").run()
    assert not at.exception
    survival = at.dataframe[1].value
    assert survival.iloc[0]["Case fatality"] == labels.fmt_pct(s["case_fatality"])
    assert survival.iloc[0]["365 d (95% CI)"] == labels.fmt_ci(s["survival_365d"], s["ci_lower_365d"], s["ci_upper_365d"])
    at.selectbox(key="km_by").set_value("sex").run()
    assert any("Log-rank test" in m.value for m in at.markdown)


def test_overview_headline_numbers(app, cases):
    at = open_page(app, "overview")
    metrics = {m.label: m.value for m in at.main.metric}
    s = stats.survival_summary(cases["followup_days"], cases["died"])
    age = stats.lab_summary(cases["age_years"])
    assert metrics["Cases"] == f"{len(cases):,}"
    assert metrics["Sites"] == str(cases["site_id"].nunique())
    assert metrics["Median age (IQR)"] == f"{age['median']:.0f} ({age['p25']:.0f}–{age['p75']:.0f})"
    assert metrics["Deaths"] == f"{s['n_deaths']:,}"
    assert metrics["Case fatality"] == labels.fmt_pct(s["case_fatality"])
    assert metrics["1-year survival"] == labels.fmt_pct(s["survival_365d"])


def test_labs_match_the_lab_distributions(con, built):
    labs = con.execute("SELECT * FROM fct_lab_results").df()
    expected = stats.lab_distributions(labs).set_index("analyte")
    for analyte in ("calcium", "phosphate", "pth_intact"):
        res = queries.lab_queries(con, CohortFilter(), analyte)
        row = res["summary"].iloc[0]
        for col in ("n", "median", "p25", "p75", "pct_low", "pct_high"):
            assert _same(row[col], expected.loc[analyte, col]), (analyte, col)
        assert res["histogram"]["n"].sum() == row["n"]
    capp = queries.capp_queries(con, CohortFilter())["summary"].iloc[0]
    for col in ("n", "median", "pct_high"):
        assert _same(capp[col], expected.loc[stats.CAXP_ANALYTE, col]), col
    # SI units: the same values divided by the SI factor
    si = queries.lab_queries(con, CohortFilter(), "calcium", si=True)
    assert si["info"]["unit"] == "mmol/L"
    assert si["summary"].iloc[0]["median"] == pytest.approx(expected.loc["calcium", "median"] / 4.008)
    assert si["summary"].iloc[0]["pct_high"] == pytest.approx(expected.loc["calcium", "pct_high"])


def test_labs_page_unit_toggle_and_analyte_picker(app):
    at = open_page(app, "labs")
    assert at.selectbox(key="analyte").value == "calcium"
    at.segmented_control(key="units").set_value("si").run()
    assert not at.exception
    assert any("mmol/L" in c.value for c in at.caption) or "mmol/L" in at.dataframe[0].value.columns[2]
    at.selectbox(key="analyte").set_value("pth_intact").run()
    assert not at.exception
    at.selectbox(key="labs_by").set_value("kidney_status").run()
    assert not at.exception and len(at.dataframe[0].value) > 2


def test_organs_match_the_facts(con, cases):
    res = queries.organ_queries(con, CohortFilter(), "warfarin")
    organs = con.execute("SELECT * FROM fct_organ_involvement").df()
    freq = organs.groupby("organ").size()
    assert dict(zip(res["frequency"]["organ"], res["frequency"]["n"])) == freq.to_dict()
    pairs = organs.merge(organs, on="case_id")
    pairs = pairs[pairs["organ_x"] < pairs["organ_y"]].groupby(["organ_x", "organ_y"]).size()
    assert {(a, b): n for a, b, n in res["cooccurrence"].itertuples(index=False)} == pairs.to_dict()
    by = res["by_stratum"].set_index("group")
    assert by["n_cases"].sum() == len(cases)
    assert by.loc["Yes", "n_visceral"] == int((cases["warfarin"].eq(True).fillna(False) & cases["visceral_involvement"]).sum())


def test_cases_page_shows_the_bundled_autopsy_case(app):
    at = open_page(app, "cases")
    assert any(s.value == f"Case {SEED_ID}" for s in at.subheader), "the real case is shown first"
    facts = at.dataframe[1].value
    assert dict(zip(facts.iloc[:, 0], facts.iloc[:, 1]))["Kidney status"] == "AKI"
    labs = at.dataframe[2].value
    flags = dict(zip(labs["Analyte"], labs["Flag"]))
    assert flags["Calcium (total)"] == "↑ High" and flags["Intact PTH"] == "↓ Low" and flags["Platelet count"] == "Normal"
    assert len(labs) == 23


def test_cases_search_and_link_to_a_case(app, cases):
    syn = sorted(cases.loc[cases["is_synthetic"], "case_id"])[5]
    app.query_params["case"] = syn
    app.query_params["q"] = "SYN"
    at = open_page(app, "cases")
    assert any(s.value == f"Case {syn}" for s in at.subheader)
    assert any("Synthetic case" in m.value for m in at.markdown)
    assert len(at.dataframe[0].value) == N_SYNTHETIC
    at.text_input(key="case").set_value("NO-SUCH-CASE").run()
    assert not at.exception and any("no case" in w.value for w in at.warning)


def test_quality_page_lists_quarantine_and_completeness(app):
    at = open_page(app, "quality")
    q = at.dataframe[0].value
    assert len(q) == 1 and "age_years" in q["Reasons"].iloc[0]
    comp = at.dataframe[1].value
    assert set(comp["Field"]) >= {"Sex", "Kidney status", "Cause of death"}


def test_a_new_snapshot_is_picked_up_without_restart(app, built):
    from orchestration.warehouse.publish import publish

    at = open_page(app, "overview")
    before = [c.value for c in at.sidebar.caption if "Snapshot" in c.value]
    result = publish(built)
    at.run()
    after = [c.value for c in at.sidebar.caption if "Snapshot" in c.value]
    assert before != after and result.version in after[0]
    assert not at.exception


# ----------------------------------------------------------------------------- nothing published


def test_nothing_published_yet(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home = Home(tmp_path / "empty").ensure()
    monkeypatch.setenv("REGISTRY_HOME", str(home.root))
    at = AppTest.from_file(APP, default_timeout=60)
    for page in PAGES:
        open_page(at, page)
        if page not in ("submit", "sql"):
            assert "Nothing published yet: run `registry build`" in at.info[0].value


def test_queries_module_declares_its_pages():
    assert set(queries.PAGES) >= {"overview", "mortality", "organs", "labs", "cases", "quality"}
    for fns in queries.PAGES.values():
        for fn in fns:
            assert callable(fn)
    assert Path(APP).is_file()
