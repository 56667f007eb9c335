"""orchestration.analytics.stats against independent implementations: lifelines for survival, its band, the
median and the log-rank test; numpy for quantiles; plain counting for the rest. Fast (no pipeline)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from orchestration.analytics import stats


def lifelines_km(days, died) -> KaplanMeierFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KaplanMeierFitter().fit(np.asarray(days, dtype=float), np.asarray(died, dtype=bool))


def assert_curve_is_lifelines(days, died) -> pd.DataFrame:
    curve = stats.kaplan_meier(days, died)
    kmf = lifelines_km(days, died)
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_
    et = kmf.event_table
    assert curve["day"].tolist() == [int(d) for d in sf.index]
    assert curve["n_at_risk"].tolist() == et["at_risk"].astype(int).tolist()
    assert curve["n_events"].tolist() == et["observed"].astype(int).tolist()
    assert curve["n_censored"].tolist() == et["censored"].astype(int).tolist()
    # the very same arithmetic as lifelines: equal to the last bit
    assert curve["survival"].tolist() == sf.tolist()
    np.testing.assert_allclose(curve["ci_lower"], ci.iloc[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve["ci_upper"], ci.iloc[:, 1], rtol=0, atol=1e-12)
    assert (curve["ci_lower"] <= curve["survival"]).all() and (curve["survival"] <= curve["ci_upper"]).all()
    summary = stats.survival_summary(days, died)
    med = kmf.median_survival_time_
    assert summary["median_survival_days"] == (None if math.isinf(med) else med)
    for d in stats.SURVIVAL_DAYS:
        assert summary[f"survival_{d}d"] == pytest.approx(float(kmf.survival_function_at_times(d).iloc[0]), abs=1e-15)
        lo, hi = ci.asof(d)
        assert summary[f"ci_lower_{d}d"] == pytest.approx(lo, abs=1e-12)
        assert summary[f"ci_upper_{d}d"] == pytest.approx(hi, abs=1e-12)
    return curve


@pytest.mark.parametrize("seed", range(40))
def test_kaplan_meier_is_lifelines_on_random_cohorts(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    days = rng.integers(0, int(rng.integers(2, 400)), n)  # few distinct days: many ties
    died = rng.random(n) < rng.random()
    assert_curve_is_lifelines(days, died)


def test_ties_count_deaths_before_censorings():
    curve = assert_curve_is_lifelines([10, 10, 10, 20, 30], [True, True, False, True, False])
    assert curve.to_dict("list")["n_at_risk"] == [5, 5, 2, 1]
    row = curve[curve["day"] == 10].iloc[0]
    assert (row["n_events"], row["n_censored"]) == (2, 1)
    assert row["survival"] == pytest.approx(3 / 5)


def test_day_zero_is_always_on_the_curve():
    curve = assert_curve_is_lifelines([5, 7], [True, False])
    assert curve.iloc[0].to_dict() == {"day": 0, "n_at_risk": 2, "n_events": 0, "n_censored": 0, "survival": 1.0, "ci_lower": 1.0, "ci_upper": 1.0}
    curve = assert_curve_is_lifelines([0, 0, 0, 4], [True, False, True, True])
    assert curve["day"].tolist() == [0, 4] and curve["n_events"].tolist() == [2, 1]


def test_everybody_dies_gives_zero_with_a_zero_band():
    curve = assert_curve_is_lifelines([3, 3, 8], [True, True, True])
    last = curve.iloc[-1]
    assert (last["survival"], last["ci_lower"], last["ci_upper"]) == (0.0, 0.0, 0.0)
    s = stats.survival_summary([3, 3, 8], [True, True, True])
    assert s["survival_365d"] == 0.0 and s["median_survival_days"] == 3 and s["case_fatality"] == 1.0


@pytest.mark.parametrize("n", [2, 4, 6, 8, 10, 14, 18, 20, 44, 58])
def test_median_when_the_curve_lands_on_one_half_is_lifelines(n):
    # n deaths on n days: S(n/2) is 1/2 exactly in exact arithmetic; lifelines' floating-point value
    # is sometimes a hair above (then its median is the next day). We follow lifelines.
    days = list(range(1, n + 1))
    assert_curve_is_lifelines(days, [True] * n)


def test_nobody_dies_has_no_median_and_a_flat_band():
    curve = assert_curve_is_lifelines([40, 400], [False, False])
    assert (curve["survival"] == 1.0).all() and (curve["ci_lower"] == 1.0).all()
    s = stats.survival_summary([40, 400], [False, False])
    assert s["median_survival_days"] is None and s["survival_365d"] == 1.0 and s["case_fatality"] == 0.0


def test_unknown_outcomes_are_dropped_whatever_the_container():
    days = [10, 20, 30, 40, None]
    died = [True, None, False, np.nan, True]
    expected = stats.kaplan_meier([10, 30], [True, False])
    for d, e in [
        (days, died),
        (pd.Series(days, dtype="Int64"), pd.Series([True, None, False, None, True], dtype="boolean")),
        (np.array(days, dtype=object), np.array(died, dtype=object)),
        (pd.Series([10.0, 20.0, 30.0, 40.0, np.nan]), pd.Series([1.0, np.nan, 0.0, np.nan, 1.0])),
    ]:
        pd.testing.assert_frame_equal(stats.kaplan_meier(d, e), expected)
        s = stats.survival_summary(d, e)
        # the case with a known outcome but no follow-up time counts in the outcome totals only
        assert (s["n_cases"], s["n_known_outcome"], s["n_deaths"]) == (5, 3, 2)
        assert s["case_fatality"] == pytest.approx(2 / 3)


def test_no_known_outcome_gives_empty_figures():
    curve = stats.kaplan_meier([1, 2], [None, None])
    assert list(curve.columns) == list(stats.CURVE_COLUMNS) and len(curve) == 0
    s = stats.survival_summary([1, 2], [None, None])
    assert s["n_cases"] == 2 and s["n_known_outcome"] == 0 and s["n_deaths"] == 0
    assert all(s[k] is None for k in ("case_fatality", "survival_30d", "ci_upper_365d", "median_survival_days"))
    assert all(math.isnan(x) for x in stats.survival_at(curve, 30))
    s = stats.survival_summary([], [])
    assert s["n_cases"] == 0 and s["survival_30d"] is None


def test_survival_at_is_right_continuous_and_holds_after_the_end():
    curve = stats.kaplan_meier([30, 60, 100, 100], [True, True, False, False])
    s30 = stats.survival_at(curve, 30)
    assert s30[0] == pytest.approx(0.75)  # the death on day 30 counts on day 30
    assert stats.survival_at(curve, 29)[0] == 1.0
    assert stats.survival_at(curve, 59)[0] == pytest.approx(0.75)
    assert stats.survival_at(curve, 365) == stats.survival_at(curve, 100)
    assert stats.survival_at(curve, 365)[0] == pytest.approx(0.5)
    lo, s, hi = s30[1], s30[0], s30[2]
    assert lo <= s <= hi
    assert all(math.isnan(x) for x in stats.survival_at(curve, -1))


# ----------------------------------------------------------------------------- log-rank


@pytest.mark.parametrize("seed", range(15))
def test_logrank_is_lifelines(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 400))
    k = int(rng.integers(2, 6))
    days = rng.integers(0, 200, n)
    died = rng.random(n) < 0.6
    groups = rng.choice([f"g{i}" for i in range(k)], n)
    if len(set(groups)) < 2:
        return
    expected = multivariate_logrank_test(days, groups, died).p_value
    assert stats.logrank_p(days, died, groups) == pytest.approx(expected, abs=1e-9)


def test_logrank_drops_unknown_outcomes_and_needs_two_groups():
    days = [5, 8, 12, 20, 25, 30, 40]
    died = [True, False, True, None, True, True, False]
    groups = ["a", "a", "a", "b", "b", "b", None]
    keep = [0, 1, 2, 4, 5]
    expected = multivariate_logrank_test([days[i] for i in keep], [groups[i] for i in keep], [died[i] for i in keep]).p_value
    assert stats.logrank_p(days, died, groups) == pytest.approx(expected, abs=1e-12)
    assert stats.logrank_p(days, died, ["a"] * 7) is None
    assert stats.logrank_p(days, [None] * 7, groups) is None
    assert stats.logrank_p([], [], []) is None


def test_logrank_is_fast_on_100k_cases():
    rng = np.random.default_rng(3)
    n = 100_000
    args = (rng.integers(0, 1800, n), rng.random(n) < 0.6, rng.choice(list("abcdef"), n))
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        stats.logrank_p(*args)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.2


# ----------------------------------------------------------------------------- labs


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 50, 501])
def test_lab_summary_is_numpy(n):
    rng = np.random.default_rng(n)
    values = np.round(rng.lognormal(2, 0.5, n), 2)
    s = stats.lab_summary(values, 5.0, 10.0)
    p25, med, p75 = np.percentile(values, [25, 50, 75])
    assert s["n"] == n
    assert s["mean"] == pytest.approx(sum(values) / n, rel=1e-12)
    assert s["p25"] == pytest.approx(p25, rel=1e-12) and s["median"] == pytest.approx(med, rel=1e-12) and s["p75"] == pytest.approx(p75, rel=1e-12)
    assert s["min"] == min(values) and s["max"] == max(values)
    if n > 1:
        mean = sum(values) / n
        assert s["sd"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)), rel=1e-9)
    else:
        assert s["sd"] is None
    n_low = sum(1 for v in values if v < 5.0)
    n_high = sum(1 for v in values if v > 10.0)
    assert (s["n_low"], s["n_high"]) == (n_low, n_high)
    assert s["pct_low"] == pytest.approx(100 * n_low / n) and s["pct_high"] == pytest.approx(100 * n_high / n)


def test_lab_summary_quartiles_interpolate_linearly():
    s = stats.lab_summary([8.0, 10.0, 12.0, 9.0])
    assert (s["p25"], s["median"], s["p75"]) == (8.75, 9.5, 10.5)
    assert s["n_low"] == s["n_high"] == 0 and s["pct_low"] == 0.0


def test_lab_summary_per_value_limits_and_missing_values():
    # a value is flagged against its own range (as fct_lab_results.flag); no range: neither
    values = [1.0, 5.0, 9.0, None, 4.0]
    low = [2.0, 6.0, None, 0.0, None]
    high = [3.0, 8.0, None, 1.0, 3.5]
    s = stats.lab_summary(values, low, high)
    assert s["n"] == 4 and s["n_low"] == 2 and s["n_high"] == 1
    assert stats.lab_summary([], 1, 2) == {
        "n": 0, "mean": None, "sd": None, "min": None, "p25": None, "median": None, "p75": None, "max": None,
        "n_low": 0, "n_high": 0, "pct_low": None, "pct_high": None,
    }


def test_lab_distributions_use_baselines_and_form_the_calcium_phosphate_product():
    labs = pd.DataFrame(
        [
            ("A", "calcium", "mg/dL", 8.0, 8.5, 10.5, True),
            ("B", "calcium", "mg/dL", 10.0, 8.5, 10.5, True),
            ("C", "calcium", "mg/dL", 12.0, 8.5, 10.5, True),
            ("A", "calcium", "mg/dL", 20.0, 8.5, 10.5, False),
            ("A", "phosphate", "mg/dL", 5.0, 2.5, 4.5, True),
            ("B", "phosphate", "mg/dL", 6.0, 2.5, 4.5, True),
        ],
        columns=["case_id", "analyte", "unit", "value", "ref_low", "ref_high", "is_baseline"],
    )
    out = stats.lab_distributions(labs).set_index("analyte")
    assert list(out.index) == ["calcium", "phosphate", "calcium_phosphate_product"]
    assert out.loc["calcium", "n"] == 3 and out.loc["calcium", "max"] == 12.0
    cap = out.loc["calcium_phosphate_product"]
    assert cap["unit"] == "mg²/dL²" and cap["n"] == 2 and cap["min"] == 40.0 and cap["max"] == 60.0
    assert cap["n_high"] == 1 and cap["n_low"] == 0


# ----------------------------------------------------------------------------- strata


def _cases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": list("ABCDEF"),
            "sex": ["female", "female", "male", None, "other", "other"],
            "warfarin": pd.Series([True, False, None, True, None, False], dtype="boolean"),
            "visceral_involvement": [True, False, False, False, True, False],
            "died": pd.Series([True, False, True, None, None, None], dtype="boolean"),
            "followup_days": pd.Series([30, 400, 10, None, 50, None], dtype="Int32"),
        }
    )


def test_stratum_values_are_spelled_as_in_the_marts():
    cases = _cases()
    assert stats.stratum_values(cases, "sex").tolist() == ["female", "female", "male", "unknown", "other", "other"]
    assert stats.stratum_values(cases, "warfarin").tolist() == ["true", "false", "unknown", "true", "unknown", "false"]
    assert stats.stratum_values(cases, "visceral_involvement").tolist() == ["true", "false", "false", "false", "true", "false"]
    assert stats.stratum_values(cases, "all").tolist() == ["all"] * 6
    with pytest.raises(KeyError):
        stats.stratum_values(cases, "no_such_column")


def test_mortality_by_counts_and_estimates_each_group():
    cases = _cases()
    out = stats.mortality_by(cases, "sex")
    assert list(out.columns) == list(stats.MORTALITY_COLUMNS)
    assert out["stratum_value"].tolist() == ["female", "male", "other", "unknown"]
    rows = out.set_index("stratum_value")
    assert rows.loc["female", ["n_cases", "n_known_outcome", "n_deaths"]].tolist() == [2, 2, 1]
    assert rows.loc["female", "case_fatality"] == 0.5 and rows.loc["female", "survival_30d"] == 0.5
    assert rows.loc["female", "median_survival_days"] == 30
    # every outcome unknown: counted, no figures
    other = rows.loc["other"]
    assert other["n_cases"] == 2 and other["n_known_outcome"] == 0 and other["n_deaths"] == 0
    assert other[["case_fatality", "survival_30d", "survival_365d", "median_survival_days"]].isna().all()
    # with bands
    wide = stats.mortality_by(cases, "all", with_ci=True)
    assert len(wide) == 1 and {"ci_lower_365d", "ci_upper_30d"} <= set(wide.columns)
    # an empty frame still has the whole-registry row, and nothing else
    empty = cases.iloc[:0]
    assert stats.mortality_by(empty, "all")[["n_cases", "n_known_outcome"]].values.tolist() == [[0, 0]]
    assert len(stats.mortality_by(empty, "sex")) == 0


def test_logrank_of_group_numbers_equals_that_of_group_objects():
    """The numeric fast path (the dashboards pass group numbers) gives exactly the general path's p."""
    rng = np.random.default_rng(16)
    for trial in range(100):
        n = int(rng.integers(5, 2000))
        days = rng.integers(0, 400, n).astype(float)
        days[rng.random(n) < 0.05] = np.nan
        died = rng.integers(0, 2, n).astype(float)
        died[rng.random(n) < 0.05] = np.nan
        g = rng.integers(0, int(rng.integers(1, 5)), n)
        if trial % 3 == 0:
            g = g.astype(bool)
        fast, general = stats.logrank_p(days, died, g), stats.logrank_p(days, died, list(g))
        assert (fast is None and general is None) or fast == general, trial


# ----------------------------------------------------------------------------- counted input (the dashboards')


def _grouped(days, died, groups=None):
    """(days, died, group, n) per distinct combination, as a SQL GROUP BY returns them (shuffled)."""
    df = pd.DataFrame({"days": days, "died": died, "group": 0 if groups is None else groups})
    g = df.groupby(["days", "died", "group"], dropna=False).size().reset_index(name="n").sample(frac=1, random_state=1)
    return (g["days"].to_numpy(float), g["died"].to_numpy(float), g["group"].to_numpy(np.int64), g["n"].to_numpy(np.int64))


@pytest.mark.parametrize("seed", range(30))
def test_counted_survival_equals_per_case_to_the_last_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2000))
    days = rng.integers(0, int(rng.integers(2, 900)), n).astype(float)
    days[rng.random(n) < 0.05] = np.nan
    died = (rng.random(n) < rng.random()).astype(float)
    died[rng.random(n) < 0.1] = np.nan
    groups = rng.integers(0, int(rng.integers(1, 5)), n)
    d, e, g, w = _grouped(days, died, groups)
    pd.testing.assert_frame_equal(stats.kaplan_meier_counts(d, e, w), stats.kaplan_meier(days, died), check_exact=True)
    assert stats.survival_summary_counts(d, e, w) == stats.survival_summary(days, died)
    assert stats.logrank_p_counts(d, e, g, w) == stats.logrank_p(days, died, groups)


def test_counted_survival_of_nothing():
    empty = np.empty(0)
    pd.testing.assert_frame_equal(stats.kaplan_meier_counts(empty, empty, empty), stats.kaplan_meier(empty, empty), check_exact=True)
    assert stats.survival_summary_counts(empty, empty, empty) == stats.survival_summary(empty, empty)
    # rows with no case (count 0) change nothing
    assert stats.survival_summary_counts([5.0, 7.0], [1.0, 0.0], [3, 0]) == stats.survival_summary([5, 5, 5], [1, 1, 1])


@pytest.mark.parametrize("seed", range(30))
def test_counted_quantiles_and_lab_summary_are_numpys(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    v = np.round(rng.lognormal(1, 0.6, n), int(rng.integers(0, 4)))
    v[rng.random(n) < 0.03] = np.nan
    lo = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.uniform(1, 3, n), 1))
    hi = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.uniform(3, 9, n), 1))
    qs = [0.0, 0.005, 0.25, 0.5, 0.75, 0.995, 1.0, float(rng.random())]
    known = v[~np.isnan(v)]
    if known.size:
        uniq, counts = np.unique(known, return_counts=True)
        assert stats.quantiles_counted(uniq, counts, qs).tolist() == np.quantile(known, qs).tolist()
    df = pd.DataFrame({"v": v, "lo": lo, "hi": hi}).groupby(["v", "lo", "hi"], dropna=False).size().reset_index(name="n")
    got = stats.lab_summary_counts(df["v"], df["lo"], df["hi"], df["n"])
    want = stats.lab_summary(v, lo, hi)
    assert {k: got[k] for k in got if k not in ("mean", "sd")} == {k: want[k] for k in want if k not in ("mean", "sd")}
    for k in ("mean", "sd"):  # exact sums rounded once against numpy's pairwise sums
        assert (got[k] is None) == (want[k] is None)
        if got[k] is not None:
            assert got[k] == pytest.approx(want[k], rel=1e-13)
