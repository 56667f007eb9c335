"""Registry statistics for an arbitrary set of cases: the one implementation the dashboards use.

The published marts (``mart_survival``, ``mart_mortality``, ``mart_lab_distributions``) are computed
in SQL by dbt for the whole registry; a dashboard that filters the cohort needs the same figures
on the fly. This module computes them for any set of cases, with exactly the definitions of the
marts (``tests/pipeline/test_marts.py`` checks that both agree on every stratum of a built registry, and
``tests/unit/test_stats.py`` checks this module against ``lifelines`` and ``numpy``).

Definitions (shared with the marts, see ``docs/marts.md``):

* **Outcome.** ``died`` is true (dead), false (alive) or null (vital status unknown). Cases with an
  unknown outcome are left out of every figure except ``n_cases``; the functions below drop them
  themselves (``died`` null). A case with a known outcome but no follow-up time counts in
  ``n_known_outcome`` / ``n_deaths`` but cannot enter the survival curve.
* **Kaplan-Meier.** One row per distinct follow-up day, plus the origin (day 0) even when nobody
  died or was censored on day 0 -- the timeline of ``lifelines.KaplanMeierFitter``. On a tied day
  deaths are counted before censorings (the censored are still at risk that day). The estimate is
  computed as lifelines does, ``S(t) = exp(cumsum(log(n - d) - log(n)))``, so that it is equal to
  lifelines bit for bit (this matters for the median when the curve lands exactly on 0.5).
* **Confidence band (95 %).** Greenwood's variance ``sum d / (n (n - d))`` on the log(-log) scale,
  exactly as lifelines' ``confidence_interval_``: ``exp(-exp(log(-log S) -/+ z sqrt(var) / log S))``
  with ``z = Phi^-1(0.975)``. Where the estimate is 1 (before the first death) the band is [1, 1];
  where it is 0 (everybody at risk died) the band is [0, 0]; a day with ``n = d`` adds nothing to the
  variance (lifelines' convention).
* **Survival at day N** is right-continuous: the estimate of the last curve row on or before day N
  (deaths on day N count). After the last observation the curve stays at its last value.
* **Median survival** is the first day at which the estimate is <= 0.5, or None if it never is.
* **Lab summaries.** ``sd`` is the sample standard deviation (n - 1; None for a single value);
  quartiles are numpy's default (continuous, linear interpolation); ``n_low`` / ``n_high`` count
  values below the lower / above the upper reference limit, percentages are 0-100 of ``n``.

Speed: everything is vectorised numpy; ``kaplan_meier`` on 100,000 cases takes a few milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

__all__ = [
    "CAXP_HIGH",
    "CAXP_UNIT",
    "CURVE_COLUMNS",
    "MORTALITY_COLUMNS",
    "STRATA",
    "SURVIVAL_DAYS",
    "Z",
    "kaplan_meier",
    "kaplan_meier_counts",
    "lab_distributions",
    "lab_summary",
    "lab_summary_counts",
    "logrank_p",
    "logrank_p_counts",
    "quantiles_counted",
    "mortality_by",
    "stratum_values",
    "survival_at",
    "survival_summary",
    "survival_summary_counts",
]

#: 95 % two-sided normal quantile, as lifelines computes it (``inv_normal_cdf(1 - 0.05 / 2)``).
Z: float = float(_sps.norm.ppf(0.975))

#: Days at which the marts report the survival estimate.
SURVIVAL_DAYS: tuple[int, ...] = (30, 90, 180, 365)

#: The strata of ``mart_mortality`` / ``mart_survival``, in publication order.
STRATA: tuple[str, ...] = (
    "all",
    "kidney_status",
    "sex",
    "age_band",
    "visceral_involvement",
    "lesion_distribution",
    "warfarin",
)
_BOOLEAN_STRATA = frozenset({"visceral_involvement", "warfarin"})

#: Columns of ``kaplan_meier`` (those of ``mart_survival`` without the stratum).
CURVE_COLUMNS: tuple[str, ...] = ("day", "n_at_risk", "n_events", "n_censored", "survival", "ci_lower", "ci_upper")

#: Columns of ``mortality_by`` (those of ``mart_mortality``).
MORTALITY_COLUMNS: tuple[str, ...] = (
    "stratum",
    "stratum_value",
    "n_cases",
    "n_known_outcome",
    "n_deaths",
    "case_fatality",
    "survival_30d",
    "survival_90d",
    "survival_180d",
    "survival_365d",
    "median_survival_days",
)

#: Calcium x phosphate product (both in mg/dL): unit and the upper limit used for ``n_high``
#: (55 mg^2/dL^2, KDOQI 2003 bone-metabolism guideline for CKD stage 5). There is no lower limit.
CAXP_UNIT = "mg²/dL²"
CAXP_HIGH = 55.0
CAXP_ANALYTE = "calcium_phosphate_product"


# ----------------------------------------------------------------------------- input cleaning


def _as_died(died: Any) -> np.ndarray:
    """``died`` as a float array: 1.0 dead, 0.0 alive, NaN unknown (None, NA, NaN)."""
    if isinstance(died, (pd.Series, pd.Index)):
        # numpy dtypes convert directly; nullable ones (boolean, Int64, object) via objects with NA
        arr = died.to_numpy() if isinstance(died.dtype, np.dtype) and died.dtype != object else died.to_numpy(dtype=object)
    else:
        arr = np.asarray(died if hasattr(died, "__len__") else list(died))
    if arr.dtype.kind in "biuf":
        return arr.astype(float)
    out = np.full(arr.shape[0], np.nan)
    known = pd.notna(arr)
    out[known] = arr[known].astype(bool).astype(float)
    return out


def _as_float(x: Any) -> np.ndarray:
    if isinstance(x, (pd.Series, pd.Index)):
        return pd.to_numeric(x, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    arr = np.asarray(x)
    if arr.dtype.kind in "iufb":
        return arr.astype(float)
    return pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _observations(days: Any, died: Any) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """(durations, events) of the cases that can enter a survival curve, and the case counts."""
    t = _as_float(days)
    e = _as_died(died)
    if t.shape != e.shape:
        raise ValueError(f"days and died differ in length ({t.shape[0]} and {e.shape[0]})")
    known = ~np.isnan(e)
    n_known = int(known.sum())
    n_deaths = int((e[known] == 1.0).sum())
    keep = known & ~np.isnan(t)
    return t[keep], e[keep] == 1.0, len(t), n_known, n_deaths


# ----------------------------------------------------------------------------- Kaplan-Meier


def _km_arrays(t: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """The curve of one entry per case: the counted curve with every count 1 (the same float sums of
    whole numbers, so the same bits)."""
    return _km_counted(t, e, np.ones(t.size, dtype=np.int64))


def _km_table(uniq: np.ndarray, removed: np.ndarray, events: np.ndarray) -> dict[str, np.ndarray]:
    """The curve from the distinct days (sorted, as floats) and, per day, the cases leaving the risk
    set (``removed``) and the deaths among them (``events``), both as float counts."""
    if uniq.size == 0:
        return {c: np.empty(0) for c in CURVE_COLUMNS}
    n = float(removed.sum())  # a sum of whole numbers: exact, the number of cases
    origin = min(0.0, float(uniq[0]))
    if uniq[0] > origin:  # lifelines' timeline always starts at the origin (day 0)
        uniq = np.concatenate(([origin], uniq))
        removed = np.concatenate(([0.0], removed))
        events = np.concatenate(([0.0], events))
    at_risk = n - np.concatenate(([0.0], np.cumsum(removed)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.cumsum(np.log(at_risk - events) - np.log(at_risk))
        survival = np.exp(log_s)
        var_terms = events / (at_risk * (at_risk - events))
        var_terms[np.isinf(var_terms)] = 0.0  # n = d: lifelines adds nothing
        greenwood = np.cumsum(var_terms)
        v = np.log(survival)
        lower = np.exp(-np.exp(np.log(-v) - Z * np.sqrt(greenwood) / v))
        upper = np.exp(-np.exp(np.log(-v) + Z * np.sqrt(greenwood) / v))
    lower[np.isnan(lower)] = 1.0  # S = 1: lifelines fills the undefined band with 1
    upper[np.isnan(upper)] = 1.0
    return {
        "day": uniq,
        "n_at_risk": at_risk,
        "n_events": events,
        "n_censored": removed - events,
        "survival": survival,
        "ci_lower": lower,
        "ci_upper": upper,
    }


def _day_array(a: np.ndarray) -> np.ndarray:
    if a.size and np.all(a == np.round(a)) and np.all(np.abs(a) < 2**53):
        return a.astype(np.int64)
    return a if a.size else a.astype(np.int64)


def kaplan_meier(days: Any, died: Any) -> pd.DataFrame:
    """The Kaplan-Meier curve with its 95 % log(-log) Greenwood band, one row per distinct day.

    ``days`` are follow-up days, ``died`` true / false / null; cases whose outcome is unknown (or
    whose follow-up time is missing) are dropped here. Columns: day, n_at_risk, n_events,
    n_censored, survival, ci_lower, ci_upper -- those of ``mart_survival``. The first row is the
    origin (day 0) even when nothing happened that day. Empty frame when no case can enter.
    """
    t, e, *_ = _observations(days, died)
    return _curve_frame(_km_arrays(t, e))


def _curve_frame(a: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": _day_array(a["day"]),
            "n_at_risk": a["n_at_risk"].astype(np.int64),
            "n_events": a["n_events"].astype(np.int64),
            "n_censored": a["n_censored"].astype(np.int64),
            "survival": a["survival"].astype(float),
            "ci_lower": a["ci_lower"].astype(float),
            "ci_upper": a["ci_upper"].astype(float),
        },
        columns=list(CURVE_COLUMNS),
    )


def survival_at(curve: pd.DataFrame, day: float) -> tuple[float, float, float]:
    """(survival, ci_lower, ci_upper) at ``day`` on a curve of :func:`kaplan_meier`, right-continuous.

    The values of the last row on or before ``day``; after the end of the curve its last values;
    NaN for an empty curve or a day before the origin.
    """
    if curve is None or len(curve) == 0:
        return (math.nan, math.nan, math.nan)
    days = curve["day"].to_numpy()
    i = int(np.searchsorted(days, day, side="right")) - 1
    if i < 0:
        return (math.nan, math.nan, math.nan)
    return (float(curve["survival"].iat[i]), float(curve["ci_lower"].iat[i]), float(curve["ci_upper"].iat[i]))


def _median(day: np.ndarray, survival: np.ndarray) -> int | float | None:
    hit = np.nonzero(survival <= 0.5)[0]
    if hit.size == 0:
        return None
    d = day[hit[0]]
    return int(d) if float(d).is_integer() else float(d)


def _none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def survival_summary(days: Any, died: Any) -> dict[str, Any]:
    """The figures of one ``mart_mortality`` row for any set of cases, plus the 95 % bands.

    Keys: n_cases (every case given, unknown outcomes included), n_known_outcome, n_deaths,
    case_fatality (n_deaths / n_known_outcome, a proportion; None when no outcome is known),
    survival_30d / 90d / 180d / 365d with ci_lower_Nd / ci_upper_Nd, and median_survival_days
    (first day with an estimate <= 0.5, None if never). Survival figures are None when no case
    can enter the curve.
    """
    t, e, n_cases, n_known, n_deaths = _observations(days, died)
    return _summary(_km_arrays(t, e), n_cases, n_known, n_deaths)


def _summary(a: dict[str, np.ndarray], n_cases: int, n_known: int, n_deaths: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_cases": n_cases,
        "n_known_outcome": n_known,
        "n_deaths": n_deaths,
        "case_fatality": (n_deaths / n_known) if n_known else None,
    }
    for d in SURVIVAL_DAYS:
        i = int(np.searchsorted(a["day"], d, side="right")) - 1
        ok = a["day"].size > 0 and i >= 0
        out[f"survival_{d}d"] = float(a["survival"][i]) if ok else None
        out[f"ci_lower_{d}d"] = float(a["ci_lower"][i]) if ok else None
        out[f"ci_upper_{d}d"] = float(a["ci_upper"][i]) if ok else None
    out["median_survival_days"] = _median(a["day"], a["survival"]) if a["day"].size else None
    return out


# ----------------------------------------------------------------------------- strata


def stratum_values(cases: pd.DataFrame, stratum: str) -> pd.Series:
    """The stratum value of every case of a ``dim_cases``-like frame, spelled as in the marts.

    ``all`` -> 'all'; visceral_involvement and warfarin -> 'true' / 'false' / 'unknown'; the text
    strata (kidney_status, sex, age_band, lesion_distribution) -> their value, 'unknown' when null.
    """
    if stratum == "all":
        return pd.Series("all", index=cases.index, dtype=object)
    if stratum not in cases.columns:
        raise KeyError(f"no column {stratum!r} in the cases frame (strata: {', '.join(STRATA)})")
    col = cases[stratum]
    if stratum in _BOOLEAN_STRATA:
        flag = _as_died(col)  # same tri-state reading: 1.0 true, 0.0 false, NaN unknown
        return pd.Series(np.where(np.isnan(flag), "unknown", np.where(flag == 1.0, "true", "false")), index=cases.index, dtype=object)
    return col.astype(object).where(col.notna(), "unknown").astype(str)


def mortality_by(cases: pd.DataFrame, stratum: str, *, with_ci: bool = False) -> pd.DataFrame:
    """Rows of ``mart_mortality`` for one stratum of a ``dim_cases``-like frame.

    ``cases`` needs the column of the stratum, ``died`` and ``followup_days``. One row per stratum
    value present (for ``all``: always one row, even for no case), sorted by value. With
    ``with_ci`` the 95 % band at each reported day is added (ci_lower_30d, ci_upper_30d, ...).
    """
    values = stratum_values(cases, stratum)
    days = _as_float(cases["followup_days"]) if len(cases) else np.empty(0)
    died = _as_died(cases["died"]) if len(cases) else np.empty(0)
    groups = [("all", np.arange(len(cases)))] if stratum == "all" else [
        (str(v), np.nonzero((values == v).to_numpy())[0]) for v in sorted(values.unique())
    ]
    rows = []
    for value, idx in groups:
        s = survival_summary(days[idx], died[idx])
        row = {"stratum": stratum, "stratum_value": value, **{k: s[k] for k in MORTALITY_COLUMNS[2:]}}
        if with_ci:
            for d in SURVIVAL_DAYS:
                row[f"ci_lower_{d}d"] = s[f"ci_lower_{d}d"]
                row[f"ci_upper_{d}d"] = s[f"ci_upper_{d}d"]
        rows.append(row)
    cols = list(MORTALITY_COLUMNS) + ([f"ci_{b}_{d}d" for d in SURVIVAL_DAYS for b in ("lower", "upper")] if with_ci else [])
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- log-rank


def logrank_p(days: Any, died: Any, groups: Any) -> float | None:
    """p-value of the multi-group log-rank test (as ``lifelines.statistics.multivariate_logrank_test``).

    Cases with an unknown outcome, no follow-up time or no group (null) are dropped. None when
    fewer than two groups remain.
    """
    t = _as_float(days)
    e = _as_died(died)
    if isinstance(groups, np.ndarray) and groups.dtype.kind in "biu":
        # group numbers (the dashboards' case): never null, and np.unique numbers them as the sorted
        # factorisation below would, without a million Python objects
        if not (t.shape[0] == e.shape[0] == groups.shape[0]):
            raise ValueError("days, died and groups differ in length")
        keep = ~np.isnan(t) & ~np.isnan(e)
        t, e = t[keep], e[keep] == 1.0
        labels, codes = np.unique(groups[keep], return_inverse=True)
    else:
        g = pd.Series(np.asarray(groups, dtype=object) if not isinstance(groups, pd.Series) else groups.to_numpy(dtype=object))
        if not (t.shape[0] == e.shape[0] == len(g)):
            raise ValueError("days, died and groups differ in length")
        keep = ~np.isnan(t) & ~np.isnan(e) & g.notna().to_numpy()
        t, e, g = t[keep], e[keep] == 1.0, g[keep]
        codes, labels = pd.factorize(g, sort=True)
    return _logrank_grouped(t, e, codes, len(labels))


def _logrank_grouped(t: np.ndarray, e: np.ndarray, codes: np.ndarray, k: int, w: np.ndarray | None = None) -> float | None:
    """The p-value of cases (or, with ``w``, rows of ``w[i]`` cases) with follow-up ``t``, death
    ``e`` (bool) and group number ``codes`` (0 .. k-1); None below two groups. Counts are float sums
    of whole numbers, exact, so one entry per case and counted rows give the same bits."""
    if k < 2:
        return None
    uniq, inv = np.unique(t, return_inverse=True)
    n_t = uniq.size
    cell = inv * k + codes
    weight = np.ones(t.size) if w is None else w.astype(float)
    removed = np.bincount(cell, weights=weight, minlength=n_t * k).reshape(n_t, k)
    observed = np.bincount(cell, weights=np.where(e, weight, 0.0), minlength=n_t * k).reshape(n_t, k)
    return _logrank(removed, observed)


def _logrank(removed: np.ndarray, observed: np.ndarray) -> float:
    """The p-value from the cases leaving the risk set and the deaths, per distinct day (rows, sorted)
    and group (columns), as float counts."""
    k = removed.shape[1]
    n_ij = removed.sum(0) - np.vstack([np.zeros((1, k)), np.cumsum(removed, axis=0)[:-1]])
    n_i = n_ij.sum(1)
    d_i = observed.sum(1)
    expected = n_ij * (d_i / n_i)[:, None]
    z_j = observed.sum(0) - expected.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = (n_i - d_i) / (n_i - 1)
    factor[~np.isfinite(factor)] = 1.0
    factor = factor * d_i / n_i**2
    w = np.hstack([n_ij, n_i[:, None]]) * np.sqrt(factor)[:, None]
    w[np.isnan(w)] = 0.0
    v = -(w.T @ w)
    ix = np.arange(k)
    v[ix, ix] = v[ix, ix] - v[-1, ix]
    v = v[:-1, :-1]
    zz = z_j[:-1]
    u = float(zz @ np.linalg.pinv(v[:-1, :-1]) @ zz)
    return float(_sps.chi2.sf(u, k - 1))


# ----------------------------------------------------------------------------- counted input


def _counted(days: Any, died: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """:func:`_observations` for grouped input: ``n[i]`` cases had follow-up ``days[i]`` and outcome
    ``died[i]`` (1.0, 0.0, NaN unknown). Returns (days, died as bool, counts) of the rows that can
    enter a curve, and the case counts."""
    t = np.asarray(days, dtype=float)
    e = np.asarray(died, dtype=float)
    w = np.asarray(n, dtype=np.int64)
    if not (t.shape == e.shape == w.shape):
        raise ValueError("days, died and n differ in length")
    known = ~np.isnan(e)
    n_known = int(w[known].sum())
    n_deaths = int(w[known & (e == 1.0)].sum())
    keep = known & ~np.isnan(t) & (w > 0)
    return t[keep], e[keep] == 1.0, w[keep], int(w.sum()), n_known, n_deaths


def _km_counted(t: np.ndarray, e: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    if t.size == 0:
        return _km_table(np.empty(0), np.empty(0), np.empty(0))
    uniq, inv = np.unique(t, return_inverse=True)
    # float sums of whole numbers below 2**53: exact, whatever the order of the additions
    removed = np.bincount(inv, weights=w.astype(float), minlength=uniq.size)
    events = np.bincount(inv, weights=np.where(e, w, 0).astype(float), minlength=uniq.size)
    return _km_table(uniq, removed, events)


def kaplan_meier_counts(days: Any, died: Any, n: Any) -> pd.DataFrame:
    """:func:`kaplan_meier` of grouped input (``n`` cases per (days, died) row, e.g. from a SQL
    ``GROUP BY``): the same frame, to the last bit, without one array entry per case."""
    t, e, w, *_ = _counted(days, died, n)
    return _curve_frame(_km_counted(t, e, w))


def survival_summary_counts(days: Any, died: Any, n: Any) -> dict[str, Any]:
    """:func:`survival_summary` of grouped input (see :func:`kaplan_meier_counts`)."""
    t, e, w, n_cases, n_known, n_deaths = _counted(days, died, n)
    return _summary(_km_counted(t, e, w), n_cases, n_known, n_deaths)


def logrank_p_counts(days: Any, died: Any, groups: Any, n: Any) -> float | None:
    """:func:`logrank_p` of grouped input: ``n[i]`` cases of group number ``groups[i]`` (integers)
    had follow-up ``days[i]`` and outcome ``died[i]``."""
    t = np.asarray(days, dtype=float)
    e = np.asarray(died, dtype=float)
    g = np.asarray(groups, dtype=np.int64)
    w = np.asarray(n, dtype=np.int64)
    if not (t.shape == e.shape == g.shape == w.shape):
        raise ValueError("days, died, groups and n differ in length")
    keep = ~np.isnan(t) & ~np.isnan(e) & (w > 0)
    t, e, g, w = t[keep], e[keep] == 1.0, g[keep], w[keep]
    labels, codes = np.unique(g, return_inverse=True)
    return _logrank_grouped(t, e, codes, len(labels), w)


# ----------------------------------------------------------------------------- labs


def _limits(x: Any, n: int) -> np.ndarray:
    if x is None:
        return np.full(n, np.nan)
    if np.ndim(x) == 0:
        return np.full(n, np.nan if x is None or (isinstance(x, float) and math.isnan(x)) else float(x))
    a = _as_float(x)
    if a.shape[0] != n:
        raise ValueError("reference limits must be scalars or have one value per lab value")
    return a


def lab_summary(values: Any, ref_low: Any = None, ref_high: Any = None) -> dict[str, Any]:
    """Distribution of a set of lab values, as one row of ``mart_lab_distributions``.

    ``ref_low`` / ``ref_high``: a scalar, or one limit per value (e.g. fct_lab_results.ref_low); a
    value is low when below its lower limit, high when above its upper limit (flags of
    fct_lab_results). Null values are dropped. Keys: n, mean, sd (sample, n - 1), min, p25,
    median, p75, max (numpy linear quantiles), n_low, n_high, pct_low, pct_high (0-100 of n).
    """
    v = _as_float(values)
    lo, hi = _limits(ref_low, v.shape[0]), _limits(ref_high, v.shape[0])
    keep = ~np.isnan(v)
    v, lo, hi = v[keep], lo[keep], hi[keep]
    n = int(v.size)
    with np.errstate(invalid="ignore"):
        is_low = ~np.isnan(lo) & (v < lo)
        is_high = ~is_low & ~np.isnan(hi) & (v > hi)
    n_low, n_high = int(is_low.sum()), int(is_high.sum())
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "p25": None, "median": None, "p75": None,
                "max": None, "n_low": 0, "n_high": 0, "pct_low": None, "pct_high": None}
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return {
        "n": n,
        "mean": float(np.mean(v)),
        "sd": float(np.std(v, ddof=1)) if n > 1 else None,
        "min": float(v.min()),
        "p25": float(q[0]),
        "median": float(q[1]),
        "p75": float(q[2]),
        "max": float(v.max()),
        "n_low": n_low,
        "n_high": n_high,
        "pct_low": 100.0 * n_low / n,
        "pct_high": 100.0 * n_high / n,
    }


def distinct_counts(values: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    """The distinct non-NaN values (sorted) of grouped input and how many times each occurs."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(n, dtype=np.int64)
    keep = ~np.isnan(v) & (w > 0)
    uniq, inv = np.unique(v[keep], return_inverse=True)
    return uniq, np.bincount(inv, weights=w[keep], minlength=uniq.size).astype(np.int64)


def quantiles_counted(uniq: np.ndarray, counts: np.ndarray, qs: Any) -> np.ndarray:
    """``np.quantile(v, qs)`` (method 'linear') of the values ``v`` in which each of the sorted
    distinct values ``uniq[i]`` occurs ``counts[i]`` times, without building ``v``: numpy's index
    arithmetic and interpolation, step by step, so the result is the same to the last bit."""
    qs = np.asarray(qs, dtype=float)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no values")
    ends = np.cumsum(counts)  # ends[i]: the number of values <= uniq[i]

    def at(i: int) -> float:
        return float(uniq[int(np.searchsorted(ends, i, side="right"))])

    out = np.empty(qs.shape)
    for j, q in enumerate(qs.ravel()):
        virtual = float(n - 1) * float(q)
        prev = math.floor(virtual)
        nxt = prev + 1
        if virtual >= n - 1:
            prev = nxt = -1
        if virtual < 0:
            prev = nxt = 0
        gamma = virtual - prev
        a, b = at(prev % n), at(nxt % n)
        diff = b - a
        out.ravel()[j] = (b - diff * (1 - gamma)) if gamma >= 0.5 else (a + diff * gamma)
    return out


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split: x = hi + lo exactly, each with at most 26 significant bits."""
    t = x * 134217729.0  # 2**27 + 1
    hi = t - (t - x)
    return hi, x - hi


def weighted_fsum(x: np.ndarray, counts: np.ndarray) -> float:
    """``sum(x[i] * counts[i])`` correctly rounded (each product split into parts that multiply exactly)."""
    x = np.asarray(x, dtype=float)
    c = np.asarray(counts, dtype=np.int64)
    if c.size and int(c.max()) >= 2**26 or not np.all(np.isfinite(x)) or (x.size and float(np.abs(x).max()) > 1e290):
        return math.fsum(float(v) * int(k) for v, k in zip(x, c))  # not expected for registry data
    hi, lo = _split(x)
    cf = c.astype(float)
    return math.fsum(np.concatenate((hi * cf, lo * cf)).tolist())


def lab_summary_counts(values: Any, ref_low: Any, ref_high: Any, n: Any) -> dict[str, Any]:
    """:func:`lab_summary` of grouped input: ``n[i]`` values equal to ``values[i]`` with the limits
    ``ref_low[i]`` / ``ref_high[i]`` (NaN: none). Counts, n_low, n_high, percentages, min, max and
    the quartiles are those of :func:`lab_summary` to the last bit; mean and sd are the exact sums
    rounded once (numpy sums pairwise in row order), so they may differ in the last bit or two."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(n, dtype=np.int64)
    lo, hi = _limits(ref_low, v.shape[0]), _limits(ref_high, v.shape[0])
    keep = ~np.isnan(v) & (w > 0)
    v, lo, hi, w = v[keep], lo[keep], hi[keep], w[keep]
    with np.errstate(invalid="ignore"):
        is_low = ~np.isnan(lo) & (v < lo)
        is_high = ~is_low & ~np.isnan(hi) & (v > hi)
    total = int(w.sum())
    n_low, n_high = int(w[is_low].sum()), int(w[is_high].sum())
    if total == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "p25": None, "median": None, "p75": None,
                "max": None, "n_low": 0, "n_high": 0, "pct_low": None, "pct_high": None}
    uniq, counts = distinct_counts(v, w)
    q = quantiles_counted(uniq, counts, [0.25, 0.5, 0.75])
    mean = weighted_fsum(uniq, counts) / total
    dev = uniq - mean
    return {
        "n": total,
        "mean": float(mean),
        "sd": float(np.sqrt(weighted_fsum(dev * dev, counts) / (total - 1))) if total > 1 else None,
        "min": float(uniq[0]),
        "p25": float(q[0]),
        "median": float(q[1]),
        "p75": float(q[2]),
        "max": float(uniq[-1]),
        "n_low": n_low,
        "n_high": n_high,
        "pct_low": 100.0 * n_low / total,
        "pct_high": 100.0 * n_high / total,
    }


LAB_COLUMNS: tuple[str, ...] = (
    "analyte", "unit", "n", "mean", "sd", "min", "p25", "median", "p75", "max", "n_low", "n_high", "pct_low", "pct_high",
)


def lab_distributions(labs: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``mart_lab_distributions`` for a set of ``fct_lab_results`` rows (e.g. a filtered cohort).

    Uses the baseline rows (``is_baseline``) only, one row per analyte present, sorted, plus
    ``calcium_phosphate_product`` (baseline calcium x baseline phosphate, mg/dL each) for the cases
    having both. Needs the columns case_id, analyte, value, unit, ref_low, ref_high, is_baseline.
    """
    base = labs[labs["is_baseline"].astype(bool)] if len(labs) else labs
    rows = []
    for analyte, g in sorted(base.groupby("analyte", sort=True), key=lambda kv: kv[0]):
        rows.append({"analyte": analyte, "unit": g["unit"].iloc[0], **lab_summary(g["value"], g["ref_low"], g["ref_high"])})
    if len(base):
        ca = base[base["analyte"] == "calcium"].set_index("case_id")["value"]
        ph = base[base["analyte"] == "phosphate"].set_index("case_id")["value"]
        both = ca.index.intersection(ph.index)
        if len(both):
            rows.append({"analyte": CAXP_ANALYTE, "unit": CAXP_UNIT,
                         **lab_summary(ca.loc[both].to_numpy() * ph.loc[both].to_numpy(), None, CAXP_HIGH)})
    return pd.DataFrame(rows, columns=list(LAB_COLUMNS))

