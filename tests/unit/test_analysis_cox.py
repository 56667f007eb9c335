"""Cox model: every figure equals lifelines fitted directly on a hand-built complete-case design."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test

from orchestration.analytics.cox import cox_model
from orchestration.analytics.errors import AnalysisError
from tests.unit._cohorts import cohort

COVS = ["age_years", "kidney_status", "warfarin", "sex", "baseline_calcium"]


def _known(s: pd.Series) -> np.ndarray:
    return (s.notna() & (s.astype(object) != "unknown")).to_numpy()


def _reference_fit(cases: pd.DataFrame):
    keep = _known(cases["died"]) & cases["followup_days"].notna().to_numpy()
    for c in COVS:
        keep &= _known(cases[c])
    cc = cases[keep]
    df = pd.DataFrame({"T": cc["followup_days"].astype(float).to_numpy(), "E": cc["died"].astype(bool).astype(int).to_numpy()})
    df["age_years"] = cc["age_years"].astype(float).to_numpy()
    ks = cc["kidney_status"].to_numpy(dtype=object)
    ref_k = pd.Series(ks).value_counts().idxmax()
    for lv in sorted(set(ks) - {ref_k}):
        df[f"k_{lv}"] = (ks == lv).astype(float)
    df["warfarin"] = cc["warfarin"].astype(bool).astype(float).to_numpy()
    sx = cc["sex"].to_numpy(dtype=object)
    ref_s = pd.Series(sx).value_counts().idxmax()
    for lv in sorted(set(sx) - {ref_s}):
        df[f"s_{lv}"] = (sx == lv).astype(float)
    df["baseline_calcium"] = cc["baseline_calcium"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter().fit(df, "T", "E")
        ph = proportional_hazard_test(cph, df, time_transform="rank")
    return cc, df, cph, ph, ref_k, ref_s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cox_equals_lifelines_on_the_complete_cases(seed):
    cases = cohort(500, seed)
    m = cox_model(cases, COVS)
    cc, df, cph, ph, ref_k, ref_s = _reference_fit(cases)
    assert m["n_used"] == len(cc)
    assert m["n_excluded"] == len(cases) - len(cc)
    assert m["n_events"] == int(df["E"].sum())
    assert m["excluded"]["unknown_outcome"] == int((cases["died"].isna() | cases["followup_days"].isna()).sum())
    assert m["reference"] == {"kidney_status": ref_k, "warfarin": "false", "sex": ref_s}
    s = cph.summary
    names = {("age_years", None): "age_years", ("warfarin", "true"): "warfarin", ("baseline_calcium", None): "baseline_calcium"}
    for col in df.columns:
        if col.startswith("k_"):
            names[("kidney_status", col[2:])] = col
        if col.startswith("s_"):
            names[("sex", col[2:])] = col
    got = {(r["covariate"], r["level"]): r for r in m["covariates"]}
    assert set(got) == set(names)
    for key, col in names.items():
        r = got[key]
        assert r["hazard_ratio"] == pytest.approx(s.loc[col, "exp(coef)"], rel=1e-6, abs=1e-6)
        assert r["ci_lower"] == pytest.approx(s.loc[col, "exp(coef) lower 95%"], rel=1e-6, abs=1e-6)
        assert r["ci_upper"] == pytest.approx(s.loc[col, "exp(coef) upper 95%"], rel=1e-6, abs=1e-6)
        assert r["p"] == pytest.approx(s.loc[col, "p"], rel=1e-6, abs=1e-6)
    ph_got = {(r["covariate"], r["level"]): r for r in m["ph_test"]}
    for key, col in names.items():
        assert ph_got[key]["p"] == pytest.approx(ph.summary.loc[col, "p"], rel=1e-6, abs=1e-6)
        assert ph_got[key]["violated"] == (ph.summary.loc[col, "p"] < 0.05)
    assert (m["ph_warning"] is None) == (not any(r["violated"] for r in m["ph_test"]))


def test_unknown_is_left_out_never_read_as_no():
    cases = cohort(300, 5)
    m = cox_model(cases, ["warfarin"])
    known = cases["warfarin"].notna() & cases["died"].notna() & cases["followup_days"].notna()
    assert m["n_used"] == int(known.sum())
    assert m["excluded"]["unknown_covariates"] == int((cases["died"].notna() & cases["followup_days"].notna() & cases["warfarin"].isna()).sum())


def test_ph_warning_in_plain_words_when_the_test_fails():
    rng = np.random.default_rng(0)
    n = 600
    g = rng.random(n) < 0.5
    # group true dies early, then the hazards cross: non-proportional by construction
    t = np.where(g, rng.exponential(20, n), rng.weibull(3, n) * 120).round()
    cases = pd.DataFrame({"warfarin": g, "died": True, "followup_days": t})
    m = cox_model(cases, ["warfarin"])
    assert m["ph_test"][0]["violated"]
    assert "proportional-hazards assumption looks violated for warfarin" in m["ph_warning"]


def test_refuses_a_covariate_with_one_value_and_unknown_names():
    cases = cohort(200, 4)
    cases["kidney_status"] = "dialysis"
    with pytest.raises(AnalysisError, match="single known value"):
        cox_model(cases, ["kidney_status"])
    with pytest.raises(AnalysisError, match="unknown covariate"):
        cox_model(cases, ["age_years; DROP TABLE dim_cases"])
    cases["died"] = pd.array([False] * len(cases), dtype="boolean")
    with pytest.raises(AnalysisError, match="no death"):
        cox_model(cases, ["age_years"])


def test_a_chosen_reference_level():
    cases = cohort(500, 1)
    m = cox_model(cases, ["kidney_status", "age_years"], {"kidney_status": "transplant"})
    assert m["reference"]["kidney_status"] == "transplant"
    levels = {r["level"] for r in m["covariates"] if r["covariate"] == "kidney_status"}
    assert levels == {"dialysis", "ckd"}
    default = cox_model(cases, ["kidney_status", "age_years"])
    # same model, other coding: the hazard ratio of ckd vs transplant is (ckd vs dialysis) / (transplant vs dialysis)
    hr = {r["level"]: r["hazard_ratio"] for r in default["covariates"] if r["covariate"] == "kidney_status"}
    mine = {r["level"]: r["hazard_ratio"] for r in m["covariates"] if r["covariate"] == "kidney_status"}
    assert mine["ckd"] == pytest.approx(hr["ckd"] / hr["transplant"], rel=1e-5)
    with pytest.raises(AnalysisError, match="no case among those used"):
        cox_model(cases, ["kidney_status"], {"kidney_status": "aki"})
    with pytest.raises(AnalysisError, match="not a categorical covariate"):
        cox_model(cases, ["age_years"], {"age_years": "50"})
