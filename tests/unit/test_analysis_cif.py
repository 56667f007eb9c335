"""Aalen-Johansen cumulative incidence: equals a plain-Python estimator (1e-9), lifelines on data
without ties, and adds up to 1 - Kaplan-Meier."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from orchestration.analytics import stats
from orchestration.analytics.competing_risks import cif_at, cumulative_incidence
from tests.unit._cohorts import cohort


def plain_aalen_johansen(days, died, causes):
    """Textbook Aalen-Johansen and the Marubini-Valsecchi delta-method variance, loop by loop."""
    obs = []
    for t, d, c in zip(days, died, causes):
        if t is None or (isinstance(t, float) and math.isnan(t)) or pd.isna(t) or pd.isna(d):
            continue
        obs.append((float(t), bool(d), (c if isinstance(c, str) else "unknown") if bool(d) else None))
    times = sorted({t for t, _, _ in obs})
    kinds = sorted({c for _, d, c in obs if d})
    out = {}
    for k in kinds:
        s_prev, f, rows = 1.0, 0.0, []
        for t in times:
            n = sum(1 for u, _, _ in obs if u >= t)
            d = sum(1 for u, e, _ in obs if u == t and e)
            dk = sum(1 for u, e, c in obs if u == t and e and c == k)
            f += s_prev * dk / n
            rows.append((t, n, d, dk, s_prev, f))
            s_prev *= (1 - d / n)
        res = {}
        for i, (t, *_rest, f_t) in enumerate(rows):
            var = 0.0
            for (u, n, d, dk, s_lag, f_u) in rows[: i + 1]:
                a = d / (n * (n - d)) if n > d else 0.0
                var += (f_t - f_u) ** 2 * a + s_lag**2 * dk * (n - dk) / n**3 - 2 * (f_t - f_u) * s_lag * dk / n**2
            res[t] = (f_t, var)
        out[k] = res
    return out


@pytest.mark.parametrize("seed", [1, 7])
def test_equals_plain_python_with_ties_censoring_and_unknown_causes(seed):
    cases = cohort(300, seed)
    assert cases["followup_days"].dropna().duplicated().any()  # ties
    cur = cumulative_incidence(cases["followup_days"], cases["died"], cases["cause_of_death"])
    ref = plain_aalen_johansen(cases["followup_days"].astype(object), cases["died"].astype(object), cases["cause_of_death"])
    assert sorted(cur["cause"].unique()) == sorted(ref)
    assert "unknown" in ref  # both null and "unknown" causes
    for k, res in ref.items():
        g = cur[cur["cause"] == k].set_index("day")
        for t, (f, var) in res.items():
            assert abs(g.loc[int(t), "cumulative_incidence"] - f) < 1e-9
            assert abs(g.loc[int(t), "variance"] - var) < 1e-9
    # values at the reported days: right-continuous
    for r in cif_at(cur):
        res = ref[r["cause"]]
        before = [t for t in res if t <= r["day"]]
        expect = res[max(before)][0] if before else 0.0
        assert abs(r["cumulative_incidence"] - expect) < 1e-9
        assert r["ci_lower"] <= r["cumulative_incidence"] <= r["ci_upper"]


def test_causes_add_up_to_one_minus_kaplan_meier():
    cases = cohort(400, 3)
    cur = cumulative_incidence(cases["followup_days"], cases["died"], cases["cause_of_death"])
    km = stats.kaplan_meier(cases["followup_days"], cases["died"]).set_index("day")["survival"]
    total = cur.groupby("day")["cumulative_incidence"].sum()
    assert np.allclose(total.to_numpy(), 1 - km.reindex(total.index).to_numpy(), atol=1e-12)


def test_equals_lifelines_without_ties():
    from lifelines import AalenJohansenFitter

    rng = np.random.default_rng(5)
    n = 200
    t = rng.permutation(np.arange(1, n + 1)).astype(float)
    died = rng.random(n) < 0.7
    cause = np.where(died, rng.choice(["sepsis", "calciphylaxis"], n), None)
    cur = cumulative_incidence(t, died, cause)
    codes = {"sepsis": 1, "calciphylaxis": 2}
    ev = np.array([codes[c] if d else 0 for d, c in zip(died, cause)])
    for k, code in codes.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = AalenJohansenFitter().fit(t, ev, event_of_interest=code)
        g = cur[cur["cause"] == k].set_index("day")
        idx = aj.cumulative_density_.index.astype(int)
        assert np.allclose(g.loc[idx, "cumulative_incidence"], aj.cumulative_density_.iloc[:, 0], atol=1e-9)
        assert np.allclose(g.loc[idx, "variance"], aj.variance_.to_numpy(), atol=1e-9)
        ci = aj.confidence_interval_.to_numpy()
        ok = ~np.isnan(ci).any(axis=1)
        assert np.allclose(g.loc[idx, "ci_lower"].to_numpy()[ok], np.minimum(ci[:, 0], ci[:, 1])[ok], atol=1e-9)
        assert np.allclose(g.loc[idx, "ci_upper"].to_numpy()[ok], np.maximum(ci[:, 0], ci[:, 1])[ok], atol=1e-9)


def test_a_death_without_cause_is_unknown_and_unknown_outcomes_are_left_out():
    cur = cumulative_incidence([10, 10, 20, 30, 40], [True, True, None, False, True], [None, "sepsis", "sepsis", None, "unknown"])
    assert list(dict.fromkeys(cur["cause"])) == ["sepsis", "unknown"]
    g = cur[cur["cause"] == "unknown"].set_index("day")
    assert g.loc[10, "n_at_risk"] == 4  # the unknown-outcome case is not counted
    assert g.loc[10, "cumulative_incidence"] == pytest.approx(1 / 4)
    assert g.loc[40, "cumulative_incidence"] == pytest.approx(1 / 4 + (2 / 4) * 1 / 1)
