"""Cumulative incidence of death by cause (competing risks), Aalen-Johansen estimator.

Pure: arrays in, a frame / plain data out. Tested in ``tests/unit/test_analysis_cif.py`` against a
plain-Python Aalen-Johansen (1e-9) and, on data without tied death days, against lifelines'
``AalenJohansenFitter`` (which jitters tied times at random; this module never does).

Definitions:

* **Cases**: those with a known vital status and a follow-up time (as the Kaplan-Meier curve of
  ``analytics.stats``). A death is an event of its ``cause_of_death`` code; a death without a
  cause counts as ``unknown``. The alive are censored at their last contact.
* **Estimator** at each distinct day t_j (with n_j at risk, d_j deaths of any cause, d_kj of
  cause k): ``F_k(t) = sum_{t_j <= t} S(t_j-) d_kj / n_j`` where ``S`` is the all-cause Kaplan-Meier
  estimate just before t_j. All deaths of one day are handled together (tied days exactly, no
  jitter); a case censored on a day of deaths is still at risk that day (the Kaplan-Meier
  convention). The cumulative incidences of all causes add up to ``1 - S(t)``.
* **Variance**: the delta-method (Greenwood-type) estimator of Marubini & Valsecchi (1995), as
  given by Collett, *Modelling Survival Data in Medical Research* (3rd ed., 2015, p. 411) and used
  by lifelines' ``AalenJohansenFitter``::

      Var F_k(t) = sum_{t_j <= t} [F_k(t) - F_k(t_j)]^2 d_j / (n_j (n_j - d_j))
                 + sum_{t_j <= t} S(t_j-)^2 d_kj (n_j - d_kj) / n_j^3
                 - 2 sum_{t_j <= t} [F_k(t) - F_k(t_j)] S(t_j-) d_kj / n_j^2

  (a day where everybody at risk dies, n_j = d_j, adds nothing to the first sum, the Kaplan-Meier
  convention of ``analytics.stats``).
* **95 % CI** on the log(-log) scale, so it stays within [0, 1]:
  ``exp(-exp(log(-log F) +/- z sqrt(Var) / (F |log F|)))`` with z = Phi^-1(0.975). Where F = 0 the
  interval is [0, 0].
* **Value at day N** is right-continuous: the estimate of the last day on or before N; 0 before the
  first day.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

from orchestration.analytics import variables as V

__all__ = ["CIF_COLUMNS", "CIF_DAYS", "cif_at", "cumulative_incidence", "death_causes"]

Z: float = float(_sps.norm.ppf(0.975))
CIF_DAYS: tuple[int, ...] = (30, 90, 180, 365)
CIF_COLUMNS: tuple[str, ...] = ("cause", "day", "n_at_risk", "n_deaths", "n_cause", "cumulative_incidence", "variance",
                                "ci_lower", "ci_upper")
CAUSE_ORDER: tuple[str, ...] = ("calciphylaxis", "sepsis", "cardiovascular", "respiratory", "other")


def death_causes(days: Any, died: Any, cause: Any) -> tuple[np.ndarray, np.ndarray]:
    """(durations, cause-or-None) of the cases that can enter: known outcome and follow-up time; the
    cause of a death is its code or ``unknown``, None for the censored."""
    t = pd.to_numeric(pd.Series(np.asarray(days, dtype=object)), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    d = V.coded(pd.Series(np.asarray(died, dtype=object)), "died").to_numpy(dtype=object)
    c = V.coded(pd.Series(np.asarray(cause, dtype=object)), "cause_of_death").to_numpy(dtype=object)
    if not (t.shape[0] == d.shape[0] == c.shape[0]):
        raise ValueError("days, died and cause differ in length")
    keep = ~np.isnan(t) & (d != V.UNKNOWN)
    t, d, c = t[keep], d[keep], c[keep]
    ev = np.where(d == "true", c, None)
    return t, ev


def _order(causes: Sequence[str]) -> list[str]:
    present = set(causes)
    head = [c for c in CAUSE_ORDER if c in present]
    return head + sorted(c for c in present if c not in CAUSE_ORDER and c != V.UNKNOWN) + \
        ([V.UNKNOWN] if V.UNKNOWN in present else [])


def cumulative_incidence(days: Any, died: Any, cause: Any) -> pd.DataFrame:
    """The Aalen-Johansen curves, one block of rows per cause present among the deaths (in the
    vocabulary's order, ``unknown`` last), one row per distinct day (plus the origin, day 0).
    Columns: ``CIF_COLUMNS``. Empty frame when no case can enter."""
    t, ev = death_causes(days, died, cause)
    if t.size == 0:
        return pd.DataFrame(columns=list(CIF_COLUMNS))
    uniq, inv = np.unique(t, return_inverse=True)
    is_death = ev != None  # noqa: E711 (object array)
    removed = np.bincount(inv, minlength=uniq.size).astype(float)
    deaths = np.bincount(inv, weights=is_death.astype(float), minlength=uniq.size)
    origin = min(0.0, float(uniq[0]))
    pad = uniq[0] > origin
    if pad:
        uniq = np.concatenate(([origin], uniq))
        removed = np.concatenate(([0.0], removed))
        deaths = np.concatenate(([0.0], deaths))
    at_risk = float(t.size) - np.concatenate(([0.0], np.cumsum(removed)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.exp(np.cumsum(np.log(at_risk - deaths) - np.log(at_risk)))
        a = deaths / (at_risk * (at_risk - deaths))
    a[~np.isfinite(a)] = 0.0
    lag_s = np.concatenate(([1.0], surv[:-1]))
    blocks = []
    causes = _order([str(x) for x in ev[is_death]])
    for k in causes:
        dk = np.bincount(inv, weights=(ev == k).astype(float), minlength=uniq.size - int(pad))
        if pad:
            dk = np.concatenate(([0.0], dk))
        f = np.cumsum(lag_s * dk / at_risk)
        b = lag_s**2 * dk * (at_risk - dk) / at_risk**3
        c = lag_s * dk / at_risk**2
        # sum_j (F_i - F_j)^2 a_j = F_i^2 A_i - 2 F_i (Fa)_i + (F^2 a)_i, with cumulative sums
        var = (f**2 * np.cumsum(a) - 2 * f * np.cumsum(f * a) + np.cumsum(f**2 * a)
               + np.cumsum(b) - 2 * (f * np.cumsum(c) - np.cumsum(f * c)))
        var = np.maximum(var, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lf = np.log(f)
            se = np.sqrt(var) / (f * np.abs(lf))
            lower = np.exp(-np.exp(np.log(-lf) + Z * se))
            upper = np.exp(-np.exp(np.log(-lf) - Z * se))
        zero = f <= 0
        lower[zero], upper[zero] = 0.0, 0.0
        one = f >= 1
        lower[one], upper[one] = 1.0, 1.0
        flat = ~zero & ~one & (var == 0)
        lower[flat], upper[flat] = f[flat], f[flat]
        blocks.append(pd.DataFrame({
            "cause": k,
            "day": uniq,
            "n_at_risk": at_risk.astype(np.int64),
            "n_deaths": deaths.astype(np.int64),
            "n_cause": dk.astype(np.int64),
            "cumulative_incidence": f,
            "variance": var,
            "ci_lower": lower,
            "ci_upper": upper,
        }))
    if not blocks:
        return pd.DataFrame(columns=list(CIF_COLUMNS))
    out = pd.concat(blocks, ignore_index=True)
    if np.all(out["day"] == np.round(out["day"])):
        out["day"] = out["day"].astype(np.int64)
    return out[list(CIF_COLUMNS)]


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def cif_at(curves: pd.DataFrame, days: Sequence[int] = CIF_DAYS) -> list[dict[str, Any]]:
    """``[{"cause", "day", "cumulative_incidence", "ci_lower", "ci_upper"}]`` at each of ``days`` for
    every cause of ``curves`` (right-continuous; 0 before the first day)."""
    rows = []
    if curves is None or len(curves) == 0:
        return rows
    for cause, g in curves.groupby("cause", sort=False):
        dd = g["day"].to_numpy(dtype=float)
        for day in days:
            i = int(np.searchsorted(dd, day, side="right")) - 1
            if i < 0:
                rows.append({"cause": cause, "day": int(day), "cumulative_incidence": 0.0, "ci_lower": 0.0, "ci_upper": 0.0})
                continue
            rows.append({"cause": cause, "day": int(day),
                         "cumulative_incidence": _num(g["cumulative_incidence"].iat[i]),
                         "ci_lower": _num(g["ci_lower"].iat[i]), "ci_upper": _num(g["ci_upper"].iat[i])})
    return rows
