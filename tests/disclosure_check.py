"""An independent disclosure checker: reads published tables as a user sees them and looks for
small or derivable counts. It does NOT import the code that suppresses
(``orchestration.analytics.disclosure``); it decides on its own what an attacker can work out.

A cell is *hidden* when it is None, NaN, empty or a text containing "suppressed"; anything else is
a shown value. ``k`` is the minimum cell size. Every ``check_*`` returns a list of problems (strings);
an empty list means the table is safe.

What is checked:

* :func:`check_counts`: no shown count in 1 .. k-1.
* :func:`check_table`: a two-way table of counts (hidden cells allowed) with whatever margins the
  page shows (row totals, column totals, grand total, each possibly hidden): for every hidden cell,
  the integer range an attacker can deduce from the shown cells and totals (exact bounds by integer
  linear programming, scipy's HiGHS ``milp``) must not lie inside 1 .. k-1 -- i.e. the attacker can
  neither recover a small count nor learn that the cell is small. The same holds for every hidden
  line total.
* :func:`check_distribution`: a one-way distribution with its total (a table of one row).
* :func:`counts_from_percentages`: shown percentages of a known denominator become shown counts.
* :func:`check_quantiles`: no quantile, mean or SD shown for a group of fewer than k values (or of a
  hidden size), and :func:`check_no_extremes`: no minimum or maximum column with a value.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp


def hidden(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    if isinstance(v, str):
        s = v.strip().lower()
        return s == "" or "suppressed" in s or s in ("nan", "none", "–", "-")
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def number(v: Any) -> float | None:
    if hidden(v):
        return None
    if isinstance(v, str):
        v = v.replace(",", "").replace("\u202f", "").strip()
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def check_counts(values: Iterable[Any], k: int, where: str = "") -> list[str]:
    out = []
    for i, v in enumerate(values):
        x = number(v)
        if x is not None and 1 <= x < k:
            out.append(f"{where}[{i}]: count {x:g} is below k={k}")
    return out


def _bounds(cells: list[list[float | None]], row_tot: list[float | None], col_tot: list[float | None], grand: float | None,
            cap: float, extra: Sequence[tuple[Sequence[tuple[int, int]], float]] = ()) -> dict[tuple, tuple[float, float]]:
    """Exact integer [min, max] of every unknown (hidden cell or hidden total) given the shown ones."""
    R, C = len(cells), len(cells[0]) if cells else 0
    unknown: list[tuple] = [("c", i, j) for i in range(R) for j in range(C) if cells[i][j] is None]
    unknown += [("r", i) for i in range(R) if row_tot[i] is None]
    unknown += [("col", j) for j in range(C) if col_tot[j] is None]
    if grand is None:
        unknown.append(("g",))
    if not unknown:
        return {}
    idx = {u: n for n, u in enumerate(unknown)}
    A, rhs = [], []

    def add(lhs: list[tuple], rhs_keys: tuple):
        # sum(lhs) - rhs = 0, shown values moved to the right-hand side
        row = np.zeros(len(unknown))
        const = 0.0
        for key, sign in [(x, 1.0) for x in lhs] + [(rhs_keys, -1.0)]:
            val = value(key)
            if val is None:
                row[idx[key]] += sign
            else:
                const -= sign * val
        if row.any():
            A.append(row)
            rhs.append(const)

    def value(key):
        if key[0] == "c":
            return cells[key[1]][key[2]]
        if key[0] == "r":
            return row_tot[key[1]]
        if key[0] == "col":
            return col_tot[key[1]]
        return grand

    for i in range(R):
        add([("c", i, j) for j in range(C)], ("r", i))
    for j in range(C):
        add([("c", i, j) for i in range(R)], ("col", j))
    add([("r", i) for i in range(R)], ("g",))
    add([("col", j) for j in range(C)], ("g",))
    for positions, val in extra:  # a partial sum the page shows (e.g. "known outcome" = deaths + alive)
        row = np.zeros(len(unknown))
        const = float(val)
        for (i, j) in positions:
            if ("c", i, j) in idx:
                row[idx[("c", i, j)]] += 1.0
            else:
                const -= cells[i][j]
        if row.any():
            A.append(row)
            rhs.append(const)
    n = len(unknown)
    cons = [LinearConstraint(np.array(A), np.array(rhs), np.array(rhs))] if A else []
    # objectives: every unknown on its own, and the hidden cells of each row and column together
    # (a derived count of "these categories together")
    objectives: dict[tuple, np.ndarray] = {}
    for u, pos in idx.items():
        objectives[u] = np.eye(n)[pos]
    for i in range(R):
        hid = [idx[("c", i, j)] for j in range(C) if ("c", i, j) in idx]
        if len(hid) > 1:
            objectives[("row-hidden-sum", i)] = np.isin(np.arange(n), hid).astype(float)
    for j in range(C):
        hid = [idx[("c", i, j)] for i in range(R) if ("c", i, j) in idx]
        if len(hid) > 1:
            objectives[("column-hidden-sum", j)] = np.isin(np.arange(n), hid).astype(float)
    out = {}
    for u, vec in objectives.items():
        lohi = []
        for sign in (1.0, -1.0):
            c = sign * vec
            res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(np.zeros(n), np.full(n, cap)))
            if res.status != 0:
                raise AssertionError(f"the shown figures are inconsistent (no solution): {res.message}")
            lohi.append(sign * res.fun)
        out[u] = (round(lohi[0]), round(lohi[1]))
    return out


def check_table(cells: Sequence[Sequence[Any]], k: int, *, row_totals: Sequence[Any] | None = None,
                col_totals: Sequence[Any] | None = None, grand: Any = None, where: str = "table",
                extra: Sequence[tuple[Sequence[tuple[int, int]], Any]] = ()) -> list[str]:
    """``cells`` R x C as shown; totals as shown (pass None for a margin the page does not show at all;
    a margin that is not shown is still derivable when all of its cells are shown, which the solver
    sees)."""
    cl = [[number(v) for v in row] for row in cells]
    R = len(cl)
    C = len(cl[0]) if R else 0
    rt = [number(v) for v in row_totals] if row_totals is not None else [None] * R
    ct = [number(v) for v in col_totals] if col_totals is not None else [None] * C
    g = number(grand)
    problems = check_counts([v for row in cl for v in row] + rt + ct + [g], k, where)
    shown = [v for row in cl for v in row if v is not None] + [v for v in rt + ct + [g] if v is not None]
    cap = max([1.0] + shown) * (R + 1) * (C + 1) + 10
    extra = [(pos, number(v)) for pos, v in extra if number(v) is not None]
    problems += check_counts([v for _, v in extra], k, where)
    for key, (lo, hi) in _bounds(cl, rt, ct, g, cap, extra).items():
        if lo >= 1 and hi <= k - 1:
            problems.append(f"{where}: hidden {key} can be narrowed to {lo}..{hi}, below k={k}")
    return problems


def check_distribution(cells: Sequence[Any], k: int, *, total: Any = None, where: str = "distribution") -> list[str]:
    return check_table([list(cells)], k, row_totals=[total], col_totals=None, grand=total, where=where)


def counts_from_percentages(pcts: Sequence[Any], denominator: float, *, scale: float = 100.0) -> list[float | None]:
    """Counts an attacker reads off shown percentages (0-100 by default) of a known denominator."""
    out = []
    for p in pcts:
        x = number(p)
        out.append(None if x is None else round(x / scale * denominator))
    return out


QUANTILE_COLUMNS = ("mean", "sd", "p25", "median", "p75", "iqr", "quantile", "percentile")
EXTREME_COLUMNS = ("min", "max", "minimum", "maximum")


def _is(name: Any, words: Sequence[str]) -> bool:
    s = str(name).lower()
    return any(s == w or s.startswith(w + " ") or s.startswith(w + "(") or s.startswith(w + "_") for w in words)


def check_no_extremes(df: pd.DataFrame, where: str = "table") -> list[str]:
    return [f"{where}: column {c!r} shows a minimum or maximum" for c in df.columns
            if _is(c, EXTREME_COLUMNS) and not all(hidden(v) for v in df[c])]


def _at_least(v: Any) -> float | None:
    """A hidden size stated as "at least K" ("suppressed (≥5)")."""
    import re

    m = re.search(r"≥\s*(\d+)", str(v))
    return float(m.group(1)) if m else None


def check_quantiles(df: pd.DataFrame, k: int, *, n_column: str = "n", where: str = "table") -> list[str]:
    """Rows with quantile-like values need a shown n >= k (or a stated "≥ K" with K >= k)."""
    out = []
    qcols = [c for c in df.columns if _is(c, QUANTILE_COLUMNS)]
    for i in range(len(df)):
        n = None
        if n_column in df.columns:
            v = df[n_column].iloc[i]
            n = number(v) if not hidden(v) else _at_least(v)
        shown = [c for c in qcols if not hidden(df[c].iloc[i])]
        if shown and (n is None or n < k):
            out.append(f"{where} row {i}: {', '.join(map(str, shown))} shown for a group of n={n}")
    return out
