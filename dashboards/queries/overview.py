"""The Overview page (/): headline numbers and counts by kidney status, index year and site."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dashboards.lib.cohort import CohortFilter
from dashboards.queries.common import Con, num, query_df, sort_levels, survival_counts
from orchestration.analytics import stats


def overview_queries(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Headline numbers (``summary``, one row) and counts by kidney status, index year and site."""
    return _overview(con, f, survival_counts(con, f, None, None))


def public_overview_queries(con: Con, f: CohortFilter) -> dict[str, Any]:
    """:func:`overview_queries` and the cohort's Kaplan-Meier curve (``curve``: the one curve
    ``mortality_queries(con, f, None)`` draws), from one grouping of the cohort: the viewers'
    overview shows figures read off the curve made safe."""
    counts = survival_counts(con, f, None, None)
    days, died, _, n, names = counts
    return {**_overview(con, f, counts), "curve": stats.kaplan_meier_counts(days, died, n).assign(group=names[0])}


def _overview(con: Con, f: CohortFilter, counts) -> dict[str, Any]:
    where, params = f.where()
    # every query below groups the cohort (a few thousand rows come back, never one per case); the
    # headline counts are sums of those groups, so no scan is spent on them alone
    ages = con.execute(f"SELECT age_years, count(*) AS n FROM dim_cases WHERE {where} GROUP BY 1", params).fetchnumpy()
    days, died, _, n, _ = counts
    kidney = query_df(con, f"SELECT kidney_status, count(*) AS n, count_if(sex = 'female') AS n_female "
                      f"FROM dim_cases WHERE {where} GROUP BY 1", params)
    n_female = int(kidney.pop("n_female").sum())
    n_cases = int(kidney["n"].sum())
    by_year = query_df(
        con,
        f"SELECT index_year, is_synthetic, count(*) AS n FROM dim_cases WHERE {where} GROUP BY ALL ORDER BY ALL",
        params,
    )
    by_site = query_df(
        con,
        f"SELECT site_id, is_synthetic, count(*) AS n FROM dim_cases WHERE {where} GROUP BY ALL ORDER BY n DESC, site_id, is_synthetic",
        params,
    )
    n_syn = int(by_year.loc[by_year["is_synthetic"].eq(True).to_numpy(dtype=bool), "n"].sum())
    n_sites = int(by_site["site_id"].dropna().nunique())
    age_values = np.ma.filled(np.ma.asarray(ages["age_years"], dtype=float), np.nan)
    age = stats.lab_summary_counts(age_values, None, None, ages["n"])
    surv = stats.survival_summary_counts(days, died, n)
    summary = {
        "n_cases": n_cases,
        "n_synthetic": n_syn,
        "n_sites": n_sites,
        "age_median": num(age.get("median")),
        "age_p25": num(age.get("p25")),
        "age_p75": num(age.get("p75")),
        "pct_female": (n_female / n_cases) if n_cases else None,
        **{k: surv.get(k) for k in ("n_known_outcome", "n_deaths", "case_fatality", "median_survival_days",
                                    "survival_365d", "ci_lower_365d", "ci_upper_365d")},
    }
    kidney["pct"] = kidney["n"] / max(n_cases, 1)
    kidney = sort_levels(kidney, "kidney_status", "kidney_status")
    return {"summary": pd.DataFrame([summary]), "kidney_status": kidney, "by_year": by_year, "by_site": by_site}
