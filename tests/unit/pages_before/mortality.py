"""The Mortality page: Kaplan–Meier by stratum, survival at fixed days, log-rank, mortality by stratum."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dashboards.lib.cohort import CohortFilter
from tests.unit.pages_before.common import (  # noqa: F401 (SURVIVAL_DAYS: for the page)
    AT_RISK_DAYS,
    SURVIVAL_DAYS,
    Con,
    query_df,
    survival_input,
    vocabulary,
)
from orchestration.analytics import stats


def mortality_queries(con: Con, f: CohortFilter, stratum: str | None = None, vocab=None) -> dict[str, Any]:
    """Kaplan–Meier curves by group (``curves``), number at risk (``at_risk``), survival at fixed days
    with 95% CIs and case fatality by group (``by_group``), the log-rank p-value (``logrank_p``,
    ``None`` for one group) and causes of death (``causes``)."""
    vocab = vocab if vocab is not None else vocabulary(con)
    days, died, group, names = survival_input(con, f, stratum, vocab)
    known = ~np.isnan(died) & ~np.isnan(days)
    curves, rows, at_risk = [], [], {}
    for k, g in enumerate(names):
        idx = np.nonzero(group == k)[0]
        gd, ge = days[idx], died[idx]
        curves.append(stats.kaplan_meier(gd, ge).assign(group=g))
        rows.append({"group": g, **stats.survival_summary(gd, ge)})
        kd = days[idx[known[idx]]]  # sorted already
        at_risk[g] = [int(kd.size - np.searchsorted(kd, d, side="left")) for d in AT_RISK_DAYS]
    by_group = pd.DataFrame(rows)
    p = stats.logrank_p(days, died, group) if len(names) > 1 else None
    where, params = f.where()
    causes = query_df(
        con,
        f"SELECT cause_of_death, count(*) AS n FROM dim_cases WHERE ({where}) AND died GROUP BY 1 ORDER BY n DESC",
        params,
    )
    causes["pct_of_deaths"] = causes["n"] / max(int(causes["n"].sum()), 1)
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    at_risk_df = pd.DataFrame.from_dict(at_risk, orient="index", columns=[f"Day {d}" for d in AT_RISK_DAYS])
    at_risk_df.index.name = "group"
    return {"curves": curves_df, "at_risk": at_risk_df.reset_index(), "by_group": by_group, "logrank_p": p,
            "causes": causes, "groups": names}


#: The stratum the page opens with.
DEFAULT_MORTALITY_STRATUM = "visceral_involvement"


def mortality_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    return mortality_queries(con, f, DEFAULT_MORTALITY_STRATUM)
