"""The Analysis page: Table 1, Cox model, competing risks and wound healing of the filtered cohort.

Every figure comes from :mod:`orchestration.analytics` (``table1``, ``cox``, ``competing_risks``,
``wounds``) on the cases read by :mod:`orchestration.services.cohort`: the very code behind
``registry analysis`` and ``registry report``, so the page, the command line and the report agree.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboards.lib.cohort import CohortFilter
from dashboards.queries.common import Con
from orchestration.analytics import competing_risks, cox, table1, wounds
from orchestration.analytics.errors import AnalysisError
from orchestration.services import cohort as cohort_service
from orchestration.services.report import DEFAULT_COVARIATES

DEFAULT_TABLE1_BY = "vital_status"
DEFAULT_COX_COVARIATES: tuple[str, ...] = DEFAULT_COVARIATES


def _cases(con: Con, f: CohortFilter) -> pd.DataFrame:
    where, params = f.where("d")
    return cohort_service.read_cases(con, where, params)


def table1_queries(con: Con, f: CohortFilter, by: str = DEFAULT_TABLE1_BY) -> dict[str, Any]:
    """Table 1 (``table``, as :func:`orchestration.analytics.table1.table1`) and its long rows (``rows``, a DataFrame for CSV)."""
    t = table1.table1(_cases(con, f), by)
    return {"table": t, "rows": pd.DataFrame(table1.table1_rows(t), columns=list(table1.ROW_COLUMNS))}


def cox_queries(con: Con, f: CohortFilter, covariates: tuple[str, ...] = DEFAULT_COX_COVARIATES) -> dict[str, Any]:
    """The Cox model (``model``) or the one-line reason it cannot be fitted (``error``)."""
    try:
        return {"model": cox.cox_model(_cases(con, f), list(covariates)), "error": None}
    except AnalysisError as e:
        return {"model": None, "error": str(e)}


def cif_queries(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Aalen–Johansen curves by cause (``curves``) and their values at 30/90/180/365 days (``at``)."""
    cs = _cases(con, f)
    curves = competing_risks.cumulative_incidence(cs["followup_days"], cs["died"], cs["cause_of_death"])
    return {"curves": curves, "at": pd.DataFrame(competing_risks.cif_at(curves),
                                                 columns=["cause", "day", "cumulative_incidence", "ci_lower", "ci_upper"])}


def wound_queries(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Wound healing by lesion distribution (``by_lesions``) and by treatment received (``by_treatment``)."""
    where, params = f.where("d")
    cs = cohort_service.read_cases(con, where, params)
    tr = cohort_service.read_treatments(con, where, params)
    return {"by_lesions": pd.DataFrame(wounds.healing_by_lesion_distribution(cs)),
            "by_treatment": pd.DataFrame(wounds.healing_by_treatment(cs, tr))}


def analysis_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    """What the page computes when it opens with its defaults."""
    return {"table1": table1_queries(con, f), "cox": cox_queries(con, f), "cif": cif_queries(con, f),
            "wounds": wound_queries(con, f)}
