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
  level are shown but not tested (an unknown is not a category of the fact). The test is chosen as
  the ``tableone`` package chooses it: continuous variables are summarised by median (IQR), so they
  are tested with Kruskal-Wallis (``scipy.stats.kruskal``); categorical ones with the chi-squared
  test of independence (``scipy.stats.chi2_contingency``, Yates' correction on 2x2 tables, scipy's
  default), switching to Fisher's exact test (``scipy.stats.fisher_exact``) for a 2x2 table with an
  expected count below 5 or a group with fewer than 5 known values. No p-value (``None``) when
  fewer than two known groups, fewer than two known levels, or a known group without any known value.
* **Standardised mean differences** (``tableone``'s formulas): one per pair of known groups
  ``[a, b]``; continuous: ``(mean_b - mean_a) / sqrt((sd_a^2 + sd_b^2) / 2)`` (sd with n - 1);
  categorical: the multinomial SMD of Yang & Dalton (2012) on the known levels (always >= 0).
  ``None`` where undefined.

Why not call ``tableone`` itself: it always builds its whole formatted table with per-cell Python
loops (14 s for 100,000 cases, most of it tables we do not use), and it folds "unknown" in only as a
level of its own tests. We count ourselves and compute its tests and SMDs with scipy and numpy by its
rules; ``tests/unit/test_analysis_table1.py`` checks every p-value and SMD against ``tableone`` 0.9.6
(a pinned test dependency) and against scipy.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

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


def _kruskal(samples: list[np.ndarray]) -> float | None:
    try:
        return _f(_sps.kruskal(*samples).pvalue)
    except ValueError:  # all values identical
        return None


def _categorical_test(table: np.ndarray) -> tuple[str | None, float | None]:
    """tableone's rule: chi-squared test of independence; Fisher's exact test for a 2x2 table with an
    expected count below 5 or a group with fewer than 5 known values."""
    chi = _sps.chi2_contingency(table)
    if chi.expected_freq.min() < 5 or table.sum(axis=1).min() < 5:
        if table.shape == (2, 2):
            return "Fisher's exact", _f(_sps.fisher_exact(table).pvalue)
        return "Chi-squared (warning: expected count < 5)", _f(chi.pvalue)
    return "Chi-squared", _f(chi.pvalue)


def _cont_smd(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or b.size < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _f((b.mean() - a.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))


def _cat_smd(pa: np.ndarray, pb: np.ndarray) -> float | None:
    """Yang & Dalton's multinomial SMD on level proportions (the first level dropped), as tableone."""
    p1, p2 = pa[1:], pb[1:]
    if p1.size == 0:
        return None
    covs = []
    for p in (p1, p2):
        c = -np.outer(p, p)
        c[np.diag_indices_from(c)] = p * (1 - p)
        covs.append(c)
    d = (p2 - p1).reshape(1, -1)
    try:
        sq = float((d @ np.linalg.inv((covs[0] + covs[1]) / 2) @ d.T)[0, 0])
    except np.linalg.LinAlgError:
        return None
    return _f(math.sqrt(sq)) if sq >= 0 else None


def _categorical(counts: np.ndarray, levels: list[str], groups: list[str],
                 known_groups: list[int]) -> tuple[tuple[str | None, float | None], list[dict[str, Any]]]:
    """Test and SMDs of a categorical variable from its group x level count matrix, on the known
    groups and the known levels present among them (in alphabetical order, as tableone)."""
    cols = sorted((j for j, lv in enumerate(levels) if lv != V.UNKNOWN), key=lambda j: levels[j])
    table = counts[np.ix_(known_groups, cols)] if cols else np.zeros((len(known_groups), 0), dtype=np.int64)
    table = table[:, table.sum(axis=0) > 0]
    ok = table.shape[1] >= 2 and table.sum(axis=1).min() > 0
    test = _categorical_test(table) if ok else (None, None)
    rows = []
    for ia, ib in itertools.combinations(range(len(known_groups)), 2):
        a, b = table[ia], table[ib]
        smd = _cat_smd(a / a.sum(), b / b.sum()) if ok else None
        rows.append({"groups": [groups[known_groups[ia]], groups[known_groups[ib]]], "smd": smd})
    return test, rows


def _continuous(samples: list[np.ndarray], groups: list[str],
                known_groups: list[int]) -> tuple[tuple[str | None, float | None], list[dict[str, Any]]]:
    known = [samples[i] for i in known_groups]
    test = ("Kruskal-Wallis", _kruskal(known)) if all(x.size for x in known) else (None, None)
    rows = [{"groups": [groups[known_groups[ia]], groups[known_groups[ib]]], "smd": _cont_smd(known[ia], known[ib])}
            for ia, ib in itertools.combinations(range(len(known_groups)), 2)]
    return test, rows


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
    gi, groups = V.factorize(cases[by], by) if len(cases) else (np.zeros(0, dtype=np.int64), [])
    n_groups = len(groups)
    sizes = np.bincount(gi, minlength=n_groups) if n_groups else np.zeros(0, dtype=np.int64)
    order = np.argsort(gi, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    members = [order[bounds[i]:bounds[i + 1]] for i in range(n_groups)]
    known_groups = [i for i, grp in enumerate(groups) if grp != V.UNKNOWN]
    testable = len(known_groups) >= 2
    n_total = int(len(cases))
    names = groups + [OVERALL]

    out_vars: list[dict[str, Any]] = []
    for col in wanted:
        k = V.kind(col)
        test: tuple[str | None, float | None] = (None, None)
        smd: list[dict[str, Any]] = []
        if k == "continuous":
            v = pd.to_numeric(cases[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            parts = [v[ix] for ix in members]
            summary = {grp: _continuous_summary(x) for grp, x in zip(groups, parts)}
            summary[OVERALL] = _continuous_summary(v)
            if testable:
                test, smd = _continuous([x[~np.isnan(x)] for x in parts], groups, known_groups)
            out_vars.append({"variable": col, "type": "continuous", "unit": V.CONTINUOUS[col], "summary": summary})
        else:
            li, levels = V.factorize(cases[col], col) if len(cases) else (np.zeros(0, dtype=np.int64), [])
            n_levels = len(levels)
            counts = (np.bincount(gi * n_levels + li, minlength=n_groups * n_levels).reshape(n_groups, n_levels)
                      if n_levels else np.zeros((n_groups, 0), dtype=np.int64))
            totals = np.concatenate([sizes, [n_total]])
            full = np.vstack([counts, counts.sum(axis=0, keepdims=True)])
            lv_rows = []
            for j, lv in enumerate(levels):
                lv_rows.append({"level": lv, "counts": {
                    name: {"n": int(full[i, j]), "percent": (100.0 * full[i, j] / totals[i]) if totals[i] else None}
                    for i, name in enumerate(names)}})
            if testable:
                test, smd = _categorical(counts, levels, groups, known_groups)
            out_vars.append({"variable": col, "type": k, "unit": None, "levels": lv_rows})
        out_vars[-1]["test"], out_vars[-1]["p"] = test
        out_vars[-1]["smd"] = smd
    return {
        "by": by,
        "n": n_total,
        "groups": [{"group": grp, "n": int(sizes[i])} for i, grp in enumerate(groups)] + [{"group": OVERALL, "n": n_total}],
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
