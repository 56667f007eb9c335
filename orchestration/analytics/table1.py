"""Table 1: baseline characteristics of a cohort by a grouping of the analyst's choice.

Pure: a ``dim_cases``-like frame in, plain data (dicts, lists, floats) out.

Definitions (tested in ``tests/unit/test_analysis_table1.py`` against plain counting and scipy):

* **Groups** are the coded values of the grouping column (``variables.coded``: null and the code
  ``unknown`` are the group "unknown"), in display order; "overall" is every case.
* **Categorical and boolean rows**: one row per level with ``n`` and ``percent`` (0-100) of the
  cases of the group. "unknown" (null or the code ``unknown``) is a level of its own, never folded
  into "false"/"no"; the percentages of a variable therefore add up to 100 within a group.
* **Continuous rows**: ``n`` (cases with a value), ``n_missing``, ``median``, ``q1``, ``q3`` (numpy's
  default linear quantiles, as ``tableone`` and ``analytics.stats``), ``mean`` and ``sd`` (n - 1).
* **Tests** compare the *known* groups on *known* values: the "unknown" group and the "unknown"
  level are shown but not tested (an unknown is not a category of the fact). The test is chosen and
  computed by the ``tableone`` package (pinned): continuous variables are summarised by median (IQR),
  so they are tested with Kruskal-Wallis (``scipy.stats.kruskal``); categorical ones with the
  chi-squared test of independence (``scipy.stats.chi2_contingency``, Yates' correction on 2x2
  tables, scipy's default), switching to Fisher's exact test (``scipy.stats.fisher_exact``) for a 2x2
  table with an expected count below 5. No p-value (``None``) when fewer than two known groups,
  fewer than two known levels, or a known group without any known value.
* **Standardised mean differences** (``tableone``): one per pair of known groups; continuous: the
  difference of means over the pooled SD, ``(m2 - m1) / sqrt((s1^2 + s2^2) / 2)``; categorical: the
  multinomial SMD of Yang & Dalton (2012) on the known levels (always >= 0). ``None`` where undefined.

Why ``tableone``: it is the package epidemiologists use for exactly this table (Pollard et al.,
JAMIA Open 2018), so its test choice and SMD formulas are the familiar ones; we use its test and SMD
tables and do the counting ourselves, so "unknown" stays a row of its own.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tableone import TableOne

from orchestration.analytics import variables as V

__all__ = ["table1", "table1_rows", "OVERALL"]

OVERALL = "overall"


def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def _continuous_summary(v: np.ndarray) -> dict[str, Any]:
    known = v[~np.isnan(v)]
    n = int(known.size)
    out: dict[str, Any] = {"n": n, "n_missing": int(v.size - n)}
    if n == 0:
        out.update(median=None, q1=None, q3=None, mean=None, sd=None)
        return out
    q = np.quantile(known, [0.25, 0.5, 0.75])
    out.update(median=float(q[1]), q1=float(q[0]), q3=float(q[2]), mean=float(known.mean()),
               sd=float(known.std(ddof=1)) if n > 1 else None)
    return out


def _tests(frame: pd.DataFrame, by: str, continuous: list[str], categorical: list[str],
           groups: list[str]) -> tuple[dict[str, tuple[str | None, float | None]], dict[str, list[dict[str, Any]]]]:
    """(test, p) and SMDs per variable from tableone, on known groups and known values only."""
    tests: dict[str, tuple[str | None, float | None]] = {}
    smds: dict[str, list[dict[str, Any]]] = {}
    known_groups = [g for g in groups if g != V.UNKNOWN]
    if len(known_groups) < 2:
        return tests, smds
    data = frame[frame[by].isin(known_groups)]
    testable_cont = [c for c in continuous
                     if all(data.loc[data[by] == g, c].notna().any() for g in known_groups)]
    testable_cat = [c for c in categorical
                    if data[c].nunique(dropna=True) >= 2
                    and all(data.loc[data[by] == g, c].notna().any() for g in known_groups)]
    cols = testable_cont + testable_cat
    if not cols:
        return tests, smds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = TableOne(data[cols + [by]].copy(), columns=cols, categorical=testable_cat or None,
                      continuous=testable_cont or None, nonnormal=testable_cont or None, groupby=by,
                      order={by: known_groups}, pval=True, smd=True, include_null=False, htest_name=True,
                      overall=False)
    ht = t1.htest_table
    for c in cols:
        if c in ht.index:
            test = ht.loc[c, "Test"]
            p = _f(ht.loc[c, "P-Value"])
            tests[c] = (None if test == "Not tested" or p is None else str(test), p)
    st = t1.smd_table
    if st is not None:
        for c in cols:
            rows = []
            for a, b in itertools.combinations(known_groups, 2):
                col = next((k for k in (f"SMD ({a},{b})", f"SMD ({b},{a})") if k in st.columns), None)
                if col is None or c not in st.index:
                    continue
                v = _f(st.loc[c, col])
                if v is not None and col == f"SMD ({b},{a})" and c in testable_cont:
                    v = -v  # a difference of means changes sign with the order (the categorical SMD has none)
                rows.append({"groups": [a, b], "smd": v})
            smds[c] = rows
    return tests, smds


def table1(cases: pd.DataFrame, by: str, *, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Table 1 of ``cases`` grouped by ``by``.

    Returns ``{"by", "groups": [{"group", "n"}] (overall last), "n", "variables": [...]}`` where each
    variable is ``{"variable", "type", "unit", "test", "p", "smd": [{"groups": [a, b], "smd"}],
    "levels": [{"level", "counts": {group: {"n", "percent"}}}]}`` (categorical / boolean) or
    ``{..., "summary": {group: {"n", "n_missing", "median", "q1", "q3", "mean", "sd"}}}``
    (continuous). Variables missing from ``cases`` are skipped.
    """
    if by not in V.GROUPINGS:
        raise ValueError(f"cannot group by {by!r} (choose one of: {', '.join(V.GROUPINGS)})")
    if by not in cases.columns:
        raise ValueError(f"no column {by!r} in the cases")
    wanted = [c for c in (columns or V.TABLE1_VARIABLES) if c != by and c in cases.columns]
    g = V.coded(cases[by], by) if len(cases) else pd.Series([], dtype=object)
    groups = V.level_order(by, g.unique())
    n_total = int(len(cases))
    idx = {grp: np.nonzero((g == grp).to_numpy())[0] for grp in groups}
    idx[OVERALL] = np.arange(n_total)

    frame = pd.DataFrame({by: g.to_numpy()}, index=cases.index)
    continuous: list[str] = []
    categorical: list[str] = []
    out_vars: list[dict[str, Any]] = []
    for col in wanted:
        k = V.kind(col)
        if k == "continuous":
            v = pd.to_numeric(cases[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            frame[col] = v
            continuous.append(col)
            out_vars.append({"variable": col, "type": "continuous", "unit": V.CONTINUOUS[col],
                             "summary": {grp: _continuous_summary(v[ix]) for grp, ix in idx.items()}})
        else:
            codes = V.coded(cases[col], col)
            frame[col] = codes.where(codes != V.UNKNOWN, None)  # unknown is not tested
            categorical.append(col)
            levels = V.level_order(col, codes.unique())
            arr = codes.to_numpy(dtype=object)
            lv_rows = []
            for lv in levels:
                hit = arr == lv
                counts = {}
                for grp, ix in idx.items():
                    n = int(hit[ix].sum())
                    counts[grp] = {"n": n, "percent": (100.0 * n / ix.size) if ix.size else None}
                lv_rows.append({"level": lv, "counts": counts})
            out_vars.append({"variable": col, "type": k, "unit": None, "levels": lv_rows})

    tests, smds = _tests(frame, by, continuous, categorical, groups)
    for v in out_vars:
        test, p = tests.get(v["variable"], (None, None))
        v["test"], v["p"] = test, p
        v["smd"] = smds.get(v["variable"], [])
    return {
        "by": by,
        "n": n_total,
        "groups": [{"group": grp, "n": int(idx[grp].size)} for grp in groups] + [{"group": OVERALL, "n": n_total}],
        "variables": out_vars,
    }


#: Columns of :func:`table1_rows` (the CSV of ``registry analysis table1``).
ROW_COLUMNS: tuple[str, ...] = ("variable", "type", "level", "group", "n", "percent", "n_missing", "median", "q1",
                                "q3", "test", "p", "max_abs_smd")


def table1_rows(t: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 1 in long form, one row per variable (x level) x group, for CSV."""
    rows = []
    for v in t["variables"]:
        smd = [abs(s["smd"]) for s in v["smd"] if s["smd"] is not None]
        common = {"variable": v["variable"], "type": v["type"], "test": v["test"], "p": v["p"],
                  "max_abs_smd": max(smd) if smd else None}
        if v["type"] == "continuous":
            for grp, s in v["summary"].items():
                rows.append({**common, "level": None, "group": grp, "n": s["n"], "percent": None,
                             "n_missing": s["n_missing"], "median": s["median"], "q1": s["q1"], "q3": s["q3"]})
        else:
            for lv in v["levels"]:
                for grp, c in lv["counts"].items():
                    rows.append({**common, "level": lv["level"], "group": grp, "n": c["n"], "percent": c["percent"],
                                 "n_missing": None, "median": None, "q1": None, "q3": None})
    return [{k: r.get(k) for k in ROW_COLUMNS} for r in rows]
