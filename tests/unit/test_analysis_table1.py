"""Table 1: counts equal plain counting, "unknown" is its own row, p-values equal scipy's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orchestration.analytics.table1 import table1, table1_rows
from tests.unit._cohorts import cohort


def _code(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "unknown"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


COLS = ["age_years", "sex", "warfarin", "diabetes", "baseline_calcium", "lesion_distribution", "visceral_involvement"]


@pytest.mark.parametrize("by", ["kidney_status", "warfarin", "visceral_involvement"])
def test_counts_and_p_values(by):
    cases = cohort(600, 2)
    t = table1(cases, by, columns=COLS)
    group = [_code(v) for v in cases[by].astype(object)]
    groups = [g["group"] for g in t["groups"]][:-1]
    assert sorted(groups) == sorted(set(group))
    assert {g["group"]: g["n"] for g in t["groups"]}["overall"] == len(cases)
    known_groups = [g for g in groups if g != "unknown"]
    for v in t["variables"]:
        col = v["variable"]
        if v["type"] == "continuous":
            vals = cases[col].astype(float).to_numpy()
            for g in groups:
                x = vals[[gg == g for gg in group]]
                x = x[~np.isnan(x)]
                s = v["summary"][g]
                assert s["n"] == x.size
                assert s["median"] == pytest.approx(float(np.median(x)))
                assert s["q1"] == pytest.approx(float(np.percentile(x, 25)))
            samples = [vals[[gg == g for gg in group]] for g in known_groups]
            expect = stats.kruskal(*[s[~np.isnan(s)] for s in samples]).pvalue
            assert v["test"] == "Kruskal-Wallis"
            assert v["p"] == pytest.approx(expect, rel=1e-12)
        else:
            codes = [_code(x) for x in cases[col].astype(object)]
            levels = [lv["level"] for lv in v["levels"]]
            assert sorted(levels) == sorted(set(codes))
            for lv in v["levels"]:
                for g in groups:
                    n_plain = sum(1 for c, gg in zip(codes, group) if c == lv["level"] and gg == g)
                    n_group = sum(1 for gg in group if gg == g)
                    assert lv["counts"][g]["n"] == n_plain
                    assert lv["counts"][g]["percent"] == pytest.approx(100 * n_plain / n_group)
            for g in groups:  # unknown is a row of its own: the rows add up to the group
                assert sum(lv["counts"][g]["n"] for lv in v["levels"]) == sum(1 for gg in group if gg == g)
            known_levels = [lv for lv in levels if lv != "unknown"]
            table = np.array([[sum(1 for c, gg in zip(codes, group) if c == lv and gg == g) for lv in known_levels]
                              for g in known_groups])
            chi = stats.chi2_contingency(table)
            if table.shape == (2, 2) and (chi.expected_freq.min() < 5 or table.sum(axis=1).min() < 5):
                assert v["test"] == "Fisher's exact"
                assert v["p"] == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-12)
            else:
                assert v["test"].startswith("Chi-squared")
                assert v["p"] == pytest.approx(chi.pvalue, rel=1e-12)
        assert len(v["smd"]) == len(known_groups) * (len(known_groups) - 1) // 2


def test_unknown_is_never_folded_into_false():
    cases = pd.DataFrame({"warfarin": pd.array([True, False, None, None, False], dtype="boolean"),
                          "sex": ["female", "male", "female", None, "unknown"]})
    t = table1(cases, "sex", columns=["warfarin"])
    (v,) = t["variables"]
    rows = {lv["level"]: lv["counts"]["overall"]["n"] for lv in v["levels"]}
    assert rows == {"true": 1, "false": 2, "unknown": 2}
    assert [g["group"] for g in t["groups"]] == ["female", "male", "unknown", "overall"]
    assert {g["group"]: g["n"] for g in t["groups"]}["unknown"] == 2  # null and the code "unknown"


def test_continuous_smd_is_the_difference_of_means_over_the_pooled_sd():
    cases = cohort(300, 9)
    t = table1(cases, "warfarin", columns=["age_years"])
    (v,) = t["variables"]
    (s,) = v["smd"]
    a, b = s["groups"]
    x = cases.loc[cases["warfarin"].astype(object).map(_code) == a, "age_years"].astype(float)
    y = cases.loc[cases["warfarin"].astype(object).map(_code) == b, "age_years"].astype(float)
    assert s["smd"] == pytest.approx((y.mean() - x.mean()) / np.sqrt((x.var() + y.var()) / 2), rel=1e-9)


def test_long_rows_and_refused_grouping():
    t = table1(cohort(100, 1), "sex", columns=["age_years", "warfarin"])
    rows = table1_rows(t)
    assert {r["variable"] for r in rows} == {"age_years", "warfarin"}
    with pytest.raises(ValueError, match="cannot group by"):
        table1(cohort(10, 1), "case_id")


@pytest.mark.parametrize("by, seed", [("kidney_status", 2), ("sex", 5), ("warfarin", 8)])
def test_tests_and_smds_equal_tableone(by, seed):
    """tableone 0.9.6 run on the known groups and known values gives the same tests, p-values and SMDs."""
    import warnings

    from tableone import TableOne

    cases = cohort(500, seed)
    cases.loc[cases.index[:6], "lesion_distribution"] = None  # some unknown levels in a categorical column
    t = table1(cases, by, columns=COLS)
    frame = pd.DataFrame({by: [_code(v) for v in cases[by].astype(object)]})
    cont = ["age_years", "baseline_calcium"]
    cat = [c for c in COLS if c not in cont]
    for c in cont:
        frame[c] = cases[c].astype(float).to_numpy()
    for c in cat:
        codes = [_code(v) for v in cases[c].astype(object)]
        frame[c] = [None if x == "unknown" else x for x in codes]
    frame = frame[frame[by] != "unknown"]
    groups = [g["group"] for g in t["groups"] if g["group"] not in ("unknown", "overall")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = TableOne(frame, columns=cont + cat, categorical=cat, continuous=cont, nonnormal=cont, groupby=by,
                       pval=True, smd=True, include_null=False, htest_name=True, overall=False)
    for v in t["variables"]:
        col = v["variable"]
        assert v["test"] == ref.htest_table.loc[col, "Test"]
        assert v["p"] == pytest.approx(float(ref.htest_table.loc[col, "P-Value"]), rel=1e-9)
        for s in v["smd"]:
            a, b = s["groups"]
            name = f"SMD ({a},{b})" if f"SMD ({a},{b})" in ref.smd_table.columns else f"SMD ({b},{a})"
            expect = float(ref.smd_table.loc[col, name])
            if name == f"SMD ({b},{a})" and v["type"] == "continuous":
                expect = -expect
            assert s["smd"] == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert groups


def test_sparse_two_by_two_uses_fisher():
    cases = pd.DataFrame({
        "warfarin": pd.array([True] * 6 + [False] * 7 + [None], dtype="boolean"),
        "diabetes": pd.array([True, True, True, True, False, None, False, False, False, False, False, True, None, True],
                             dtype="boolean"),
    })
    (v,) = table1(cases, "warfarin", columns=["diabetes"])["variables"]
    assert v["test"] == "Fisher's exact"
    assert v["p"] == pytest.approx(stats.fisher_exact([[4, 1], [1, 5]]).pvalue, rel=1e-12)
