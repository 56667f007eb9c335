"""Cox proportional hazards model of death from day 0 on baseline covariates.

Pure: a ``dim_cases``-like frame in, plain data out. The model is lifelines' ``CoxPHFitter``
(partial likelihood with Efron's method for tied death days, lifelines' only method; no penalty),
so the hazard ratios, Wald 95 % CIs and p-values are lifelines' own (tested to 1e-6 in
``tests/unit/test_analysis_cox.py``).

Definitions:

* **Outcome**: ``followup_days`` with ``died`` as the event; cases whose vital status is unknown or
  whose follow-up is missing cannot enter (counted in ``excluded.unknown_outcome``).
* **Complete case**: a case with an unknown value of any chosen covariate (null, or the code
  ``unknown`` of sex / kidney status ...) is left out (``excluded.unknown_covariates``).
  ``n_used + n_excluded`` is the size of the cohort given.
* **Coding**: a continuous covariate is one row (hazard ratio per unit); a boolean one is one row
  for ``true`` against ``false``; a categorical one is one row per non-reference level, the
  reference being the level with the most cases used (ties: the first in display order) unless
  ``references`` names one (``--reference kidney_status=dialysis``), stated in ``reference``. Levels absent from the cases used get no row.
* **Proportional hazards**: lifelines' ``proportional_hazard_test`` (Schoenfeld residuals against
  the rank of the death times, ``time_transform="rank"``, as ``check_assumptions`` does), one
  row per model term; a term with p < 0.05 gets a plain-words warning.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import proportional_hazard_test

from orchestration.analytics import variables as V
from orchestration.analytics.errors import AnalysisError

__all__ = ["AnalysisError", "PH_ALPHA", "cox_model", "design"]

PH_ALPHA = 0.05
_SEP = "="  # design column of a level: "kidney_status=ckd"


def _check(covariates: Sequence[str]) -> list[str]:
    covs = [c.strip() for c in covariates if c and c.strip()]
    if not covs:
        raise AnalysisError("choose at least one covariate")
    bad = [c for c in covs if c not in V.COX_COVARIATES]
    if bad:
        raise AnalysisError(f"unknown covariate {bad[0]!r} (choose from: {', '.join(V.COX_COVARIATES)})")
    if len(set(covs)) != len(covs):
        raise AnalysisError("a covariate is given twice")
    return covs


def design(cases: pd.DataFrame, covariates: Sequence[str], references: dict[str, str] | None = None) -> dict[str, Any]:
    """The complete-case design matrix of the model and its bookkeeping.

    Returns ``{"frame": DataFrame(duration, event, <design columns>), "terms": [(covariate, level,
    column)], "reference": {covariate: level}, "n_cases", "n_unknown_outcome", "n_unknown_covariates"}``.
    """
    covs = _check(covariates)
    missing = [c for c in covs if c not in cases.columns]
    if missing:
        raise AnalysisError(f"the cohort has no column {missing[0]!r}")
    n = len(cases)
    t = pd.to_numeric(cases["followup_days"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    died = V.coded(cases["died"], "died").to_numpy(dtype=object)
    outcome_ok = ~np.isnan(t) & (died != V.UNKNOWN)
    cov_ok = np.ones(n, dtype=bool)
    values: dict[str, np.ndarray] = {}
    for c in covs:
        if V.kind(c) == "continuous":
            v = pd.to_numeric(cases[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            cov_ok &= ~np.isnan(v)
        else:
            v = V.coded(cases[c], c).to_numpy(dtype=object)
            cov_ok &= v != V.UNKNOWN
        values[c] = v
    use = outcome_ok & cov_ok
    frame = pd.DataFrame({"duration": t[use], "event": (died[use] == "true").astype(int)})
    terms: list[tuple[str, str | None, str]] = []
    reference: dict[str, str] = {}
    for c in covs:
        v = values[c][use]
        if V.kind(c) == "continuous":
            frame[c] = v.astype(float)
            terms.append((c, None, c))
            continue
        levels = V.level_order(c, pd.unique(v)) if v.size else []
        if c in (references or {}):
            ref = str(references[c])
            if V.kind(c) == "boolean" and ref not in ("true", "false"):
                raise AnalysisError(f"reference of {c} must be true or false, not {ref!r}")
            if use.any() and ref not in levels:
                raise AnalysisError(f"reference {c}={ref!r} has no case among those used (levels: {', '.join(levels)})")
        elif V.kind(c) == "boolean":
            ref = "false"
        else:
            counts = {lv: int((v == lv).sum()) for lv in levels}
            ref = max(levels, key=lambda lv: (counts[lv], -levels.index(lv))) if levels else ""
        reference[c] = ref
        if V.kind(c) == "categorical" and len(levels) < 2 and use.any():
            raise AnalysisError(f"{c} has a single known value ({levels[0] if levels else '-'}) in the cases used: "
                                "leave it out or widen the cohort")
        for lv in levels:
            if lv == ref:
                continue
            col = f"{c}{_SEP}{lv}"
            frame[col] = (v == lv).astype(float)
            terms.append((c, lv, col))
        if V.kind(c) == "boolean" and ref == "false" and "true" not in levels:
            col = f"{c}{_SEP}true"
            frame[col] = np.zeros(int(use.sum()))
            terms.append((c, "true", col))
    return {
        "frame": frame,
        "terms": terms,
        "reference": reference,
        "n_cases": n,
        "n_unknown_outcome": int((~outcome_ok).sum()),
        "n_unknown_covariates": int((outcome_ok & ~cov_ok).sum()),
    }


def _f(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def ph_warning(rows: list[dict[str, Any]]) -> str | None:
    """The plain-words warning for failed proportional-hazards tests, or None."""
    bad = [r for r in rows if r["p"] is not None and r["p"] < PH_ALPHA]
    if not bad:
        return None
    names = ", ".join(r["covariate"] + (f" ({r['level']})" if r["level"] not in (None, "true") else "") for r in bad)
    return (f"The proportional-hazards assumption looks violated for {names} (Schoenfeld residual test, "
            f"p < {PH_ALPHA}): the effect of {'this covariate' if len(bad) == 1 else 'these covariates'} seems to "
            f"change over follow-up, so a single hazard ratio summarises it poorly. Consider stratifying on {'it' if len(bad) == 1 else 'them'}, "
            "splitting follow-up time, or reporting survival curves by group instead.")


def cox_model(cases: pd.DataFrame, covariates: Sequence[str], references: dict[str, str] | None = None) -> dict[str, Any]:
    """Fit the Cox model of death on ``covariates`` (names of ``variables.COX_COVARIATES``).

    Returns ``{"n_cases", "n_used", "n_excluded", "excluded": {"unknown_outcome",
    "unknown_covariates"}, "n_events", "ties": "efron", "reference": {covariate: level},
    "covariates": [{"covariate", "level", "reference", "hazard_ratio", "ci_lower", "ci_upper", "p", "coef",
    "se"}], "ph_test": [{"covariate", "level", "test_statistic", "p", "violated"}], "ph_warning"}``.
    Raises :class:`AnalysisError` when the model cannot be fitted (no death among the cases used,
    a covariate with a single value, no convergence).
    """
    bad = [k for k in (references or {}) if k not in covariates or V.kind(k) == "continuous"]
    if bad:
        raise AnalysisError(f"a reference level is given for {bad[0]!r}, which is not a categorical covariate of the model")
    d = design(cases, covariates, references)
    frame: pd.DataFrame = d["frame"]
    n_used = len(frame)
    n_events = int(frame["event"].sum()) if n_used else 0
    base = {
        "n_cases": d["n_cases"],
        "n_used": n_used,
        "n_excluded": d["n_cases"] - n_used,
        "excluded": {"unknown_outcome": d["n_unknown_outcome"], "unknown_covariates": d["n_unknown_covariates"]},
        "n_events": n_events,
        "ties": "efron",
        "reference": d["reference"],
    }
    if n_used == 0:
        raise AnalysisError("no case has a known outcome and known values of every chosen covariate")
    if n_events == 0:
        raise AnalysisError(f"no death among the {n_used} cases used: the model cannot be fitted")
    for cov, lv, col in d["terms"]:
        if frame[col].nunique() < 2:
            what = f"{cov}={lv}" if lv else cov
            raise AnalysisError(f"{what} has the same value in every case used: leave {cov} out or widen the cohort")
    cph = CoxPHFitter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph.fit(frame, duration_col="duration", event_col="event")
            ph = proportional_hazard_test(cph, frame, time_transform="rank")
    except (ConvergenceError, np.linalg.LinAlgError) as e:
        raise AnalysisError(f"the Cox model did not converge ({str(e).splitlines()[0][:120]}); "
                            "drop a covariate or widen the cohort") from None
    s = cph.summary
    rows = []
    for cov, lv, col in d["terms"]:
        r = s.loc[col]
        rows.append({
            "covariate": cov,
            "level": lv,
            "reference": d["reference"].get(cov),
            "hazard_ratio": _f(r["exp(coef)"]),
            "ci_lower": _f(r["exp(coef) lower 95%"]),
            "ci_upper": _f(r["exp(coef) upper 95%"]),
            "p": _f(r["p"]),
            "coef": _f(r["coef"]),
            "se": _f(r["se(coef)"]),
        })
    ps = ph.summary
    ph_rows = []
    for cov, lv, col in d["terms"]:
        r = ps.loc[col]
        p = _f(r["p"])
        ph_rows.append({"covariate": cov, "level": lv, "test_statistic": _f(r["test_statistic"]), "p": p,
                        "violated": bool(p is not None and p < PH_ALPHA)})
    return {**base, "covariates": rows, "ph_test": ph_rows, "ph_warning": ph_warning(ph_rows),
            "concordance": _f(cph.concordance_index_)}
