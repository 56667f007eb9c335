"""The Data quality page: quarantine, completeness and submissions (registry-wide, not filtered)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboards.lib import labels
from dashboards.lib.cohort import CohortFilter
from dashboards.queries.common import Con, query_df

#: dim_cases fields whose completeness is shown, with the cases they apply to (SQL condition) and
#: the coded value that means "not known".
COMPLETENESS_FIELDS: dict[str, tuple[str, str | None]] = {
    "index_year": ("TRUE", None),
    "sex": ("TRUE", "unknown"),
    "kidney_status": ("TRUE", "unknown"),
    "dialysis_modality": ("kidney_status = 'dialysis'", None),
    "dialysis_vintage_months": ("kidney_status = 'dialysis'", None),
    "diabetes": ("TRUE", None),
    "obesity": ("TRUE", None),
    "hypertension": ("TRUE", None),
    "malignancy": ("TRUE", None),
    "warfarin": ("TRUE", None),
    "bmi": ("TRUE", None),
    "diagnosis_basis": ("TRUE", None),
    "onset_day": ("TRUE", None),
    "diagnosis_day": ("TRUE", None),
    "vital_status": ("TRUE", "unknown"),
    "followup_days": ("TRUE", None),
    "cause_of_death": ("died", "unknown"),
    "autopsy": ("died", None),
    "wound_healing": ("TRUE", "unknown"),
}


def completeness(con: Con) -> pd.DataFrame:
    """For each field: the cases it applies to, how many have it known, and the share."""
    # one pass, without FILTER clauses (each costs a selection per aggregate): each condition is
    # evaluated once per case (a boolean column of the subquery), a field's known values are count() of
    # the field where the condition holds, less count_if() of its "not known" code
    conditions = list(dict.fromkeys(applies for applies, _ in COMPLETENESS_FIELDS.values()))
    flag = {a: (None if a == "TRUE" else f"_c{i}") for i, a in enumerate(conditions)}
    cols = list(COMPLETENESS_FIELDS) + [f"({a}) AS {flag[a]}" for a in conditions if flag[a]]
    parts = [f"count_if({flag[a]})" if flag[a] else "count(*)" for a in conditions]
    for col, (applies, unknown) in COMPLETENESS_FIELDS.items():
        c = flag[applies]
        known = f"count(CASE WHEN {c} THEN {col} END)" if c else f"count({col})"
        if unknown is not None:
            known += f" - count_if({c + ' AND ' if c else ''}CAST({col} AS VARCHAR) = '{unknown}')"
        parts.append(known)
    counts = con.execute(f"SELECT {', '.join(parts)} FROM (SELECT {', '.join(cols)} FROM dim_cases)").fetchone()
    n_of = dict(zip(conditions, counts))
    out = []
    for i, (col, (applies, _)) in enumerate(COMPLETENESS_FIELDS.items()):
        n, k = n_of[applies], counts[len(conditions) + i]
        out.append({
            "field": labels.pretty(col),
            "applies_to": {"TRUE": "all cases", "died": "deaths", "kidney_status = 'dialysis'": "dialysis cases"}[applies],
            "n_applicable": int(n),
            "n_known": int(k),
            "pct_known": (k / n) if n else None,
        })
    return pd.DataFrame(out)


def quality_queries(con: Con) -> dict[str, Any]:
    """``quarantine`` (every quarantined record with its reasons), ``completeness`` (per field) and
    ``submissions`` (records received per day)."""
    quarantine = query_df(
        con,
        """SELECT quarantined_at, case_id, revision, n_errors, reasons, source_file, record, channel,
                  is_resolved, resolved_at, resolution_note, quarantine_id
           FROM quality_quarantine ORDER BY quarantined_at DESC, quarantine_id""",
    )
    submissions = query_df(con, "SELECT day, n_accepted, n_quarantined FROM quality_submissions ORDER BY day")
    return {"quarantine": quarantine, "completeness": completeness(con), "submissions": submissions}


def quality_page(con: Con, f: CohortFilter | None = None) -> dict[str, Any]:
    return quality_queries(con)
