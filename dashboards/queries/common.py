"""What every page's queries share: the connection type, SQL helpers, the cohort condition, level
order of strata, the sidebar's options and sizes, and the survival input of a cohort.

``con`` is a connection with the published snapshot attached and selected (tables by bare name, see
:func:`orchestration.warehouse.snapshot.connect`); ``f`` is a :class:`~dashboards.lib.cohort.CohortFilter`.
Nothing here imports Streamlit."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboards.lib import labels
from dashboards.lib.cohort import AGE_BANDS, KIDNEY_STATUSES, LESION_DISTRIBUTIONS, SEXES, CohortFilter
from orchestration.analytics import stats

Con = duckdb.DuckDBPyConnection

#: Days at which the number at risk is shown under the survival curves.
AT_RISK_DAYS = (0, 90, 180, 365, 730, 1095, 1460)
#: Days of the survival table (those of the marts).
SURVIVAL_DAYS = stats.SURVIVAL_DAYS
HIST_BINS = 40

CASE_LIST_COLUMNS = (
    "case_id", "site_id", "source", "is_synthetic", "index_year", "age_years", "sex", "kidney_status", "diabetes",
    "warfarin", "visceral_involvement", "lesion_distribution", "organ_count", "vital_status", "followup_days",
    "cause_of_death",
)


# ---------------------------------------------------------------------------------- helpers


def query_df(con: Con, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
    return con.execute(sql, params if params is not None else []).df()


def numbered(sql: str) -> str:
    """``?`` placeholders as ``$p0, $p1, ...`` (to mix with named parameters)."""
    parts = sql.split("?")
    return "".join(p + (f"$p{i}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def named(params: list[Any]) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(params)}


def in_cohort(f: CohortFilter, column: str = "case_id") -> tuple[str, list[Any]]:
    """A condition restricting a fact table to the cohort (``TRUE`` when nothing is filtered)."""
    if f.is_default:
        return "TRUE", []
    where, params = f.where()
    return f"{column} IN (SELECT case_id FROM dim_cases WHERE {where})", params


def has_table(con: Con, name: str) -> bool:
    """Whether the snapshot has the table ``name`` (an older snapshot may lack a newer mart)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?",
                            [name]).fetchone()[0])


def check_stratum(stratum: str | None) -> None:
    """Strata are column names put into SQL: only the known ones are accepted."""
    if stratum is not None and stratum not in labels.STRATA:
        raise ValueError(f"unknown stratum {stratum!r}: one of {', '.join(labels.STRATA)}")


def num(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


_FIXED_ORDER = {
    "age_band": AGE_BANDS,
    "kidney_status": KIDNEY_STATUSES,
    "sex": SEXES,
    "lesion_distribution": LESION_DISTRIBUTIONS,
}


def missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def level_key(stratum: str | None, v: Any) -> tuple:
    """Sort key of one level of a stratum: vocabulary order; yes before no; missing last."""
    if missing(v):
        return (2, 0, "")
    if stratum in labels.BOOLEAN_COLUMNS:
        b = str(v).lower() in ("true", "1") if isinstance(v, str) else bool(v)
        return (0, 0 if b else 1, "")
    fixed = _FIXED_ORDER.get(stratum or "", ())
    if str(v) in fixed:
        return (0, fixed.index(str(v)), "")
    return (1, 0, str(v))


def stratum_order(stratum: str | None, values) -> list:
    """Distinct levels of a stratum in display order (missing values become ``None``, last)."""
    vals = list(dict.fromkeys(None if missing(v) else v for v in values))
    return sorted(vals, key=lambda v: level_key(stratum, v))


def sort_levels(df: pd.DataFrame, column: str, stratum: str | None) -> pd.DataFrame:
    order = sorted(range(len(df)), key=lambda i: level_key(stratum, df[column].iloc[i]))
    return df.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------------------------- shared


def vocabulary(con: Con) -> dict[tuple[str, str], str]:
    """(vocabulary, code) -> label, from the published ``vocabularies`` table."""
    rows = con.execute("SELECT vocabulary, code, label FROM vocabularies").fetchall()
    return {(v, c): lab for v, c, lab in rows}


def filter_options(con: Con) -> dict[str, Any]:
    """What the sidebar offers: sites, the index-year range, the registry's size, and the coded levels
    of each filter (``levels``: vocabulary -> codes in display order) from the published
    ``vocabularies`` table, so the filter offers exactly what this snapshot knows."""
    sites, lo, hi, n = con.execute(
        "SELECT list(DISTINCT site_id ORDER BY site_id), min(index_year), max(index_year), count(*) FROM dim_cases"
    ).fetchone()
    rows = con.execute(
        "SELECT vocabulary, list(code ORDER BY sort_order, code) FROM vocabularies "
        "WHERE vocabulary IN ('sex', 'age_band', 'kidney_status', 'lesion_distribution') GROUP BY vocabulary"
    ).fetchall()
    return {"sites": list(sites or []), "year_bounds": (int(lo), int(hi)) if lo is not None else None, "n_registry": int(n),
            "levels": {v: tuple(codes) for v, codes in rows}}


def cohort_size(con: Con, f: CohortFilter) -> dict[str, int]:
    """Cases in the cohort, of which synthetic, and cases in the whole snapshot."""
    where, params = f.where()
    n, n_syn, total = con.execute(
        f"SELECT count(*) FILTER (WHERE {where}), count(*) FILTER (WHERE ({where}) AND is_synthetic), count(*) FROM dim_cases",
        params + params,
    ).fetchone()
    return {"n_cases": int(n), "n_synthetic": int(n_syn or 0), "n_real": int(n) - int(n_syn or 0), "n_registry": int(total)}




def survival_counts(con: Con, f: CohortFilter, stratum: str | None, vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The cohort's survival input, counted in DuckDB: one row per (follow-up days, outcome, group)
    with its number of cases ``n`` -- a few thousand rows, whatever the cohort's size, for the
    ``*_counts`` functions of :mod:`orchestration.analytics.stats`. Returns (days, died as 1/0/NaN,
    group number, n, group labels). Groups are numbered in display order; levels with the same
    label, such as a null and an 'unknown' kidney status, are one group, as in the marts."""
    check_stratum(stratum)
    where, params = f.where()
    level = stratum or "NULL"
    # grouped on the raw column (a cast per case costs more than the grouping), one key fewer with the
    # outcome counted per group; the levels are named below, on the grouped rows
    rows = con.execute(
        f"SELECT followup_days AS days, {level} AS level, count(*) AS n, count(died) AS n_known, "
        f"count_if(died) AS n_dead FROM dim_cases WHERE {where} GROUP BY ALL",
        params,
    ).fetchnumpy()
    d = np.ma.filled(np.ma.asarray(rows["days"], dtype=float), np.nan)
    total, n_known, n_dead = (np.asarray(rows[c], dtype=np.int64) for c in ("n", "n_known", "n_dead"))
    # one row per (days, outcome[, level]): dead, alive, unknown
    days = np.concatenate((d, d, d))
    died = np.repeat([1.0, 0.0, np.nan], d.size)
    n = np.concatenate((n_dead, n_known - n_dead, total - n_known))
    raw = rows["level"]
    if not stratum:
        return days, died, np.zeros(n.size, dtype=np.int64), n, ["All cases"]
    values = (np.ma.asarray(raw, dtype=object).tolist() if np.ma.isMaskedArray(raw) else raw.tolist()) * 3
    levels = sorted(dict.fromkeys(values), key=lambda v: level_key(stratum, v))
    names: list[str] = []
    group_of: dict[Any, int] = {}
    for v in levels:
        name = labels.stratum_value_label(stratum, v, vocab)
        if name not in names:
            names.append(name)
        group_of[v] = names.index(name)
    group = np.fromiter((group_of[v] for v in values), dtype=np.int64, count=len(values))
    return days, died, group, n, names



DEFAULT_FILTER = CohortFilter()


def sidebar(con: Con, f: CohortFilter) -> dict[str, Any]:
    return {"options": filter_options(con), "size": cohort_size(con, f), "vocabulary": vocabulary(con)}
