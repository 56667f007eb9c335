"""Statistical disclosure control for the registry's aggregate figures (see ``docs/disclosure.md``).

Calciphylaxis is rare: a filtered cohort can narrow to one person, whose age, outcome, day of death
and lab values the figures then describe. This module holds the policy (a minimum cell size ``k``)
and the pure functions that make a table, a Kaplan-Meier curve or a lab distribution safe to show
under it. No Streamlit, no registry: numbers in, numbers out.

Rules (``k`` = the policy's minimum cell size, 5 by default):

* **Primary suppression.** A count of 1 .. k-1 is never shown. Zero may be shown.
* **Secondary (complementary) suppression.** In every line of a table whose total is shown or
  derivable (a row and its row total, a column and its column total, a distribution and the
  cohort size), either no cell is suppressed, or at least two are and the suppressed cells add up
  to 0 or at least ``k``; otherwise the smallest shown non-zero cell of the line is suppressed too
  (then zeros, then the line's total). Applied to every row and column, margins included, until
  nothing changes (:func:`suppress_table`; a distribution is a table of one row,
  :func:`suppress_counts`).
* **Percentages** of a suppressed cell are suppressed with it (:func:`share`).
* **Cohort.** A cohort of fewer than ``k`` cases shows no figure at all (:func:`cohort_ok`).
* **Kaplan-Meier** (:func:`safe_curve`): the curve stops at the last day on which at least ``k``
  cases are at risk, and it is drawn in coarsened steps: a step is drawn only once at least ``k``
  deaths have accumulated since the previous drawn step (the approach of SACRO's ACRO
  ``surv_func`` with suppression on). Survival at fixed days and the median are read off this
  safe curve only (:func:`safe_survival_at`, :func:`safe_median`). Numbers at risk are shown only
  when at least ``k`` and rounded down to a multiple of ``k`` (:func:`safe_at_risk`), so neither
  they nor their differences reveal fewer than ``k`` people.
* **Distributions of values** (:func:`safe_quantiles`): quartiles, mean and SD only for groups of at
  least ``k`` values; never a minimum, a maximum or a single value.
* **Levels** (a stratum's or a filter's) with fewer than ``k`` cases are not offered
  (:func:`offered_levels`).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from orchestration.config import Home

__all__ = [
    "DEFAULT_MIN_CELL",
    "MARK",
    "Policy",
    "cohort_ok",
    "load_policy",
    "offered_levels",
    "policy_file",
    "primary_mask",
    "safe_at_risk",
    "safe_curve",
    "safe_median",
    "safe_quantiles",
    "safe_survival_at",
    "save_policy",
    "share",
    "suppress_counts",
    "suppress_table",
]

#: OHDSI's ``minCellCount`` default (Achilles, Strategus).
DEFAULT_MIN_CELL = 5
#: Upper bound accepted for ``k`` (a larger one would suppress every figure of the registry).
MAX_MIN_CELL = 1000
#: What a suppressed cell shows in a table and in a CSV.
MARK = "suppressed"


# ----------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Policy:
    """The disclosure policy of one registry home."""

    min_cell: int = DEFAULT_MIN_CELL
    #: the file it was read from, or None for the default
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_cell", validate_min_cell(self.min_cell))

    @property
    def k(self) -> int:
        return self.min_cell

    def describe(self) -> str:
        return (f"Disclosure control: counts of 1–{self.min_cell - 1} are suppressed, and any cell from which one could be "
                f"derived (minimum cell size k = {self.min_cell}).")


def validate_min_cell(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) and not (isinstance(k, str) and k.strip().isdigit()):
        raise ValueError(f"the minimum cell size must be a whole number, not {k!r}")
    k = int(k)
    if not 1 <= k <= MAX_MIN_CELL:
        raise ValueError(f"the minimum cell size must be between 1 and {MAX_MIN_CELL}, not {k}")
    return k


def policy_file(home: Home) -> Path:
    """``$REGISTRY_HOME/config/disclosure.toml`` (a ``disclosure.json`` beside it is read when there is no TOML)."""
    return home.root / "config" / "disclosure.toml"


def load_policy(home: Home) -> Policy:
    """The home's policy; the default (k = 5) when no file is there. A broken file raises ValueError
    (never a silent fallback to a weaker policy)."""
    toml_path = policy_file(home)
    json_path = toml_path.with_suffix(".json")
    for path in (toml_path, json_path):
        if not path.exists():
            continue
        try:
            raw = path.read_bytes()
            data = tomllib.loads(raw.decode("utf-8")) if path.suffix == ".toml" else json.loads(raw)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable disclosure policy ({exc})") from exc
        if not isinstance(data, dict) or "min_cell" not in data:
            raise ValueError(f"{path}: no min_cell in the disclosure policy")
        return Policy(min_cell=data["min_cell"], source=str(path))
    return Policy()


def save_policy(home: Home, min_cell: int) -> Policy:
    """Write the policy atomically (TOML) and return it."""
    k = validate_min_cell(min_cell)
    path = policy_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("# Disclosure policy of this registry (registry disclosure set --min-cell K)\n"
                   f"min_cell = {k}\n", encoding="utf-8")
    os.replace(tmp, path)
    return Policy(min_cell=k, source=str(path))


# ----------------------------------------------------------------------------- counts


def _counts(x: Any) -> np.ndarray:
    a = np.asarray(pd.to_numeric(pd.Series(np.ravel(np.asarray(x, dtype=object))), errors="coerce").fillna(0), dtype=float)
    return a.reshape(np.shape(x))


def primary_mask(counts: Any, k: int) -> np.ndarray:
    """True where a count is in 1 .. k-1 (zero may be shown)."""
    c = _counts(counts)
    return (c >= 1) & (c < k)


def cohort_ok(n: int | None, k: int) -> bool:
    """Whether a cohort of ``n`` cases may show any figure (n >= k)."""
    return n is not None and int(n) >= k


def suppress_table(cells: Any, k: int, *, extra: Any = None, row_total_hidden: Any = None,
                   col_total_hidden: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Primary and secondary suppression of a two-way table of counts with its margins.

    ``cells``: R x C counts. The row totals, column totals and grand total are taken as shown (or
    derivable: a dashboard shows the cohort size and the groups' sizes), which is the safe
    assumption. ``extra``: an R x C boolean mask of cells to suppress whatever their count.
    ``row_total_hidden`` / ``col_total_hidden``: when the margins are published elsewhere already (the
    groups' sizes of a stratum, the cohort's deaths), their masks there; they are then fixed here
    (a total shown elsewhere is known to the reader and is never counted on as hidden).
    Returns (cell mask R x C, row-total mask R, column-total mask C, grand-total suppressed).

    Every line -- a row with its total, a column with its total, the row totals with the grand
    total, the column totals with the grand total -- ends with either no suppressed entry, or at
    least two, with the suppressed cells of the line adding up to 0 or >= k when its total is shown.
    """
    c = _counts(cells)
    if c.ndim == 1:
        c = c[None, :]
    R, C = c.shape
    full = np.zeros((R + 1, C + 1))
    full[:R, :C] = c
    full[:R, C] = c.sum(axis=1)
    full[R, :C] = c.sum(axis=0)
    full[R, C] = c.sum()
    sup = (full >= 1) & (full < k)
    if extra is not None:
        sup[:R, :C] |= np.asarray(extra, dtype=bool).reshape(R, C)
    locked = np.zeros_like(sup)
    if row_total_hidden is not None:
        sup[:R, C] = np.asarray(row_total_hidden, dtype=bool).reshape(R)
        locked[:R, C] = True
    if col_total_hidden is not None:
        sup[R, :C] = np.asarray(col_total_hidden, dtype=bool).reshape(C)
        locked[R, :C] = True
    locked[R, C] = True  # the cohort size is always shown (or nothing is)
    if full[R, C] < k:  # a cohort below k: nothing at all
        sup[:, :] = full >= 0
        return sup[:R, :C], sup[:R, C], sup[R, :C], True
    lines: list[tuple[list[tuple[int, int]], tuple[int, int]]] = []
    for r in range(R + 1):
        lines.append(([(r, j) for j in range(C)], (r, C)))
    for j in range(C + 1):
        lines.append(([(i, j) for i in range(R)], (R, j)))
    while True:
        _close_lines(full, sup, locked, lines, k)
        if R < 2 or C < 2:
            break  # a one-way table: the line rule alone leaves every hidden cell in a range reaching k
        narrowed = _audit(full, sup, R, C, k)
        if not narrowed:
            break
        # hide the smallest shown non-zero cell of the narrowed entry's row or column, else a total
        grew = False
        for pos in narrowed:
            i, j = pos
            near = [(i, jj) for jj in range(C)] if i < R else []
            near += [(ii, j) for ii in range(R)] if j < C else []
            cand = sorted((p for p in near if not sup[p] and full[p] > 0), key=lambda p: (full[p], p))
            if not cand:
                cand = [p for p in ([(i, C)] if i < R else []) + ([(R, j)] if j < C else []) if not sup[p] and not locked[p]]
            if cand:
                sup[cand[0]] = True
                grew = True
                break
        if not grew:  # nothing left to hide but the fixed totals: hide every cell
            sup[:R, :C] = True
            sup |= ~locked & (full >= 0)
            break
    return sup[:R, :C], sup[:R, C], sup[R, :C], bool(sup[R, C])


def _close_lines(full: np.ndarray, sup: np.ndarray, locked: np.ndarray, lines, k: int) -> None:
    changed = True
    while changed:
        changed = False
        for parts, total in lines:
            hidden = [p for p in parts if sup[p]]
            n_hidden = len(hidden) + int(sup[total])
            if n_hidden == 0:
                continue
            hidden_sum = sum(full[p] for p in hidden)
            if n_hidden >= 2 and (sup[total] or hidden_sum == 0 or hidden_sum >= k):
                continue
            # one more entry of this line: the smallest shown non-zero cell, then a zero, then the total
            shown = [p for p in parts if not sup[p]]
            nonzero = sorted((p for p in shown if full[p] > 0), key=lambda p: (full[p], p))
            zeros = [p for p in shown if full[p] == 0]
            if nonzero:
                pick = nonzero[0]
            elif n_hidden == 1 and zeros:
                pick = zeros[0]
            elif not sup[total] and not locked[total]:
                pick = total
            else:
                continue
            sup[pick] = True
            changed = True


def _audit(full: np.ndarray, sup: np.ndarray, R: int, C: int, k: int) -> list[tuple[int, int]]:
    """The hidden entries of an (R+1) x (C+1) table with margins that an attacker can narrow to a range
    inside 1 .. k-1 from the shown entries (exact integer bounds, scipy's HiGHS MILP)."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # scipy.optimize is slow to import; only 2-D tables need it

    unknown = [(i, j) for i in range(R + 1) for j in range(C + 1) if sup[i, j]]
    if not unknown:
        return []
    idx = {u: n for n, u in enumerate(unknown)}
    n = len(unknown)
    A, b = [], []
    eqs = [([(i, j) for j in range(C)], (i, C)) for i in range(R + 1)] + [([(i, j) for i in range(R)], (R, j)) for j in range(C + 1)]
    for parts, total in eqs:
        row = np.zeros(n)
        const = 0.0
        for p, sign in [(p, 1.0) for p in parts] + [(total, -1.0)]:
            if p in idx:
                row[idx[p]] += sign
            else:
                const -= sign * full[p]
        if row.any():
            A.append(row)
            b.append(const)
    cons = [LinearConstraint(np.array(A), np.array(b), np.array(b))] if A else []
    cap = float(full[R, C]) if not sup[R, C] else float(full.max()) * (R + 1) * (C + 1)
    objectives: list[tuple[tuple[int, int], np.ndarray]] = [(u, np.eye(n)[p]) for u, p in idx.items() if full[u] > 0]
    for parts, _ in eqs:  # hidden cells of a line together are a derived count too
        hid = [idx[p] for p in parts if p in idx]
        if len(hid) > 1:
            vec = np.zeros(n)
            vec[hid] = 1.0
            objectives.append((next(p for p in parts if p in idx), vec))
    out = []
    for u, vec in objectives:
        lo = milp(vec, constraints=cons, integrality=np.ones(n), bounds=Bounds(np.zeros(n), np.full(n, cap)))
        if lo.status != 0 or round(lo.fun) < 1:
            continue
        hi = milp(-vec, constraints=cons, integrality=np.ones(n), bounds=Bounds(np.zeros(n), np.full(n, cap)))
        if hi.status == 0 and round(-hi.fun) <= k - 1:
            out.append(u)
    return out


def suppress_counts(counts: Sequence[Any], k: int, *, extra: Any = None) -> np.ndarray:
    """Suppression of a one-way distribution whose total is shown (a table of one row): primary, then
    complementary until no suppressed cell can be recovered from the total."""
    c = _counts(counts)
    if c.size == 0:
        return np.zeros(0, dtype=bool)
    mask, _, _, _ = suppress_table(c[None, :], k, extra=None if extra is None else np.asarray(extra, dtype=bool)[None, :])
    return mask[0]


def share(counts: Any, mask: np.ndarray, values: Any) -> list[Any]:
    """``values`` (a percentage or rate per cell) with the suppressed cells' set to None."""
    vals = list(values)
    return [None if m else v for v, m in zip(vals, np.asarray(mask, dtype=bool))]


def offered_levels(counts: dict[Any, int], k: int) -> list[Any]:
    """Levels of a stratum or filter that may be offered: those with at least ``k`` cases."""
    return [lvl for lvl, n in counts.items() if n is not None and int(n) >= k]


# ----------------------------------------------------------------------------- Kaplan-Meier

SAFE_CURVE_COLUMNS = ("day", "survival", "ci_lower", "ci_upper", "drawn_step")


def safe_curve(curve: pd.DataFrame, k: int) -> pd.DataFrame:
    """A Kaplan-Meier curve (columns of :func:`orchestration.analytics.stats.kaplan_meier`) made safe.

    Rows of the result: the origin (survival 1), then one row per drawn step -- a step is drawn on the
    day when at least ``k`` deaths have accumulated since the previous drawn step, with the exact
    estimate and band of that day -- and a last row (``drawn_step`` False) at the last day on which
    at least ``k`` cases were at risk, carrying the last drawn value: the curve stops there. Empty
    when fewer than ``k`` cases enter the curve. No count is returned.
    """
    if curve is None or len(curve) == 0:
        return pd.DataFrame(columns=list(SAFE_CURVE_COLUMNS))
    cur = curve.sort_values("day", kind="stable")
    cur = cur[cur["n_at_risk"] >= k]
    if cur.empty:
        return pd.DataFrame(columns=list(SAFE_CURVE_COLUMNS))
    origin = min(0, int(cur["day"].iloc[0]))
    rows = [(origin, 1.0, 1.0, 1.0, True)]
    acc = 0
    for day, ev, s, lo, hi in zip(cur["day"], cur["n_events"], cur["survival"], cur["ci_lower"], cur["ci_upper"]):
        acc += int(ev)
        if acc >= k:
            rows.append((day, float(s), float(lo), float(hi), True))
            acc = 0
    last = cur["day"].iloc[-1]
    if last > rows[-1][0]:
        rows.append((last, rows[-1][1], rows[-1][2], rows[-1][3], False))
    out = pd.DataFrame(rows, columns=list(SAFE_CURVE_COLUMNS))
    out["day"] = out["day"].astype(cur["day"].dtype if cur["day"].dtype.kind in "iu" else float)
    return out


def safe_survival_at(safe: pd.DataFrame, day: float) -> tuple[float | None, float | None, float | None]:
    """(survival, ci_lower, ci_upper) at ``day`` on a safe curve; None after the curve stops (fewer than
    k at risk) or when there is no curve."""
    if safe is None or len(safe) == 0 or day > safe["day"].iloc[-1] or day < safe["day"].iloc[0]:
        return (None, None, None)
    i = int(np.searchsorted(safe["day"].to_numpy(), day, side="right")) - 1
    r = safe.iloc[i]
    return (float(r["survival"]), float(r["ci_lower"]), float(r["ci_upper"]))


def safe_median(safe: pd.DataFrame) -> tuple[str, int | float | None]:
    """The median on a safe curve: ("reached", day), ("not reached", None) when the whole curve down to
    its last safe day stays above 0.5, or ("suppressed", None) when there is no safe curve."""
    if safe is None or len(safe) == 0:
        return ("suppressed", None)
    hit = safe[(safe["survival"] <= 0.5) & safe["drawn_step"].astype(bool)]
    if hit.empty:
        return ("not reached", None)
    d = hit["day"].iloc[0]
    return ("reached", int(d) if float(d).is_integer() else float(d))


def safe_at_risk(values: Iterable[Any], k: int) -> list[int | None]:
    """Numbers at risk at fixed days: None below ``k``, else rounded down to a multiple of ``k``."""
    out: list[int | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or int(v) < k:
            out.append(None)
        else:
            out.append(int(v) // k * k)
    return out


# ----------------------------------------------------------------------------- distributions of values

QUANTILE_KEYS = ("mean", "sd", "p25", "median", "p75")


def safe_quantiles(summary: dict[str, Any], k: int) -> dict[str, Any]:
    """A :func:`orchestration.analytics.stats.lab_summary` row made safe: ``min`` and ``max`` always
    removed; mean, SD and quartiles only when the group has at least ``k`` values; ``n`` and the
    counts below / above range (with their percentages) suppressed as one distribution
    (low, within, high) of ``n`` values."""
    n = int(summary.get("n") or 0)
    out = {key: val for key, val in summary.items() if key not in ("min", "max")}
    if n < k:
        for key in QUANTILE_KEYS:
            out[key] = None
    n_low, n_high = int(summary.get("n_low") or 0), int(summary.get("n_high") or 0)
    cells = [n_low, max(n - n_low - n_high, 0), n_high]
    mask = suppress_counts(cells, k) if n >= k else np.ones(3, dtype=bool)
    out["n"] = None if 1 <= n < k else n
    out["n_low"] = None if mask[0] else n_low
    out["n_high"] = None if mask[2] else n_high
    if "pct_low" in out:
        out["pct_low"] = None if mask[0] else summary.get("pct_low")
    if "pct_high" in out:
        out["pct_high"] = None if mask[2] else summary.get("pct_high")
    return out
