"""The Labs page: baseline (or all) lab values of one analyte against reference ranges, and Ca x P."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dashboards.lib import labels
from dashboards.lib.cohort import CohortFilter
from tests.unit.pages_before.common import HIST_BINS, Con, check_stratum, in_cohort, named, numbered, query_df, stratum_order, vocabulary
from orchestration.analytics import stats


def _has_table(con: Con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?",
                            [name]).fetchone()[0])


def lab_options(con: Con) -> pd.DataFrame:
    """Analytes with their label, units, default reference range, SI factor and number of cases with a
    (baseline) value in the registry, from ``mart_lab_distributions`` when it is published."""
    counts = ("SELECT analyte, n AS n_cases FROM mart_lab_distributions" if _has_table(con, "mart_lab_distributions")
              else "SELECT analyte, count(*) AS n_cases FROM fct_lab_results WHERE is_baseline GROUP BY 1")
    return query_df(
        con,
        f"""WITH n AS ({counts})
           SELECT a.analyte, a.label, a.canonical_unit, a.si_unit, a.ref_low, a.ref_high, a.ref_source,
                  coalesce(u.factor, 1.0) AS si_factor, coalesce(n.n_cases, 0) AS n_cases
           FROM analytes a
           LEFT JOIN analyte_units u ON u.analyte = a.analyte AND u.unit = a.si_unit
           LEFT JOIN n ON n.analyte = a.analyte
           ORDER BY n_cases DESC, a.label""",
    )


def _analyte(con: Con, analyte: str, si: bool) -> dict[str, Any]:
    row = query_df(
        con,
        """SELECT a.label, a.canonical_unit, a.si_unit, a.ref_low, a.ref_high, coalesce(u.factor, 1.0) AS si_factor
           FROM analytes a LEFT JOIN analyte_units u ON u.analyte = a.analyte AND u.unit = a.si_unit
           WHERE a.analyte = ?""",
        [analyte],
    )
    if row.empty:
        raise KeyError(f"unknown analyte {analyte!r}")
    r = row.iloc[0]
    scale = 1.0 / float(r["si_factor"]) if si else 1.0
    return {
        "analyte": analyte,
        "label": r["label"],
        "unit": r["si_unit"] if si else r["canonical_unit"],
        "scale": scale,
        "ref_low": None if pd.isna(r["ref_low"]) else float(r["ref_low"]) * scale,
        "ref_high": None if pd.isna(r["ref_high"]) else float(r["ref_high"]) * scale,
    }


def _nice_width(raw: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at least ``raw``."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= raw * 0.999:
            return m * 10**exp
    return 10 ** (exp + 1)


def histogram(values: np.ndarray, *, extra: tuple[float | None, ...] = (), bins: int = HIST_BINS) -> pd.DataFrame:
    """Counts in equal bins spanning the 0.5th–99.5th percentiles (and the reference limits);
    values beyond fall in the edge bins (``clipped`` counts them)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return pd.DataFrame(columns=["bin_start", "bin_end", "n"])
    lo, hi = np.quantile(v, [0.005, 0.995])
    for x in extra:
        if x is not None and not math.isnan(x) and x > 0:
            lo, hi = min(lo, x), max(hi, x)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = _nice_width((hi - lo) / bins)
    lo, hi = math.floor(lo / width) * width, math.ceil(hi / width) * width
    n_bins = max(1, int(round((hi - lo) / width)))
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=n_bins, range=(lo, hi))
    out = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "n": counts})
    out.attrs["clipped"] = int(((v < lo) | (v > hi)).sum())
    return out


def _summary_rows(groups: list[tuple[str, Any, Any, Any]]) -> pd.DataFrame:
    """One :func:`orchestration.analytics.stats.lab_summary` row per (group, values, ref_low, ref_high)."""
    return pd.DataFrame([{"group": g, **stats.lab_summary(v, lo, hi)} for g, v, lo, hi in groups])


def lab_queries(con: Con, f: CohortFilter, analyte: str = "calcium", *, si: bool = False, baseline_only: bool = True,
                stratum: str | None = None, vocab=None) -> dict[str, Any]:
    """One analyte in the cohort: ``info`` (label, unit, default reference range in the chosen units),
    ``histogram`` (overall), ``histograms`` (per group, same bins, when stratified) and ``summary``
    (n, mean, SD, quartiles, % below/above the default range; overall first, then per group)."""
    check_stratum(stratum)
    info = _analyte(con, analyte, si)
    where, params = f.where("c")
    base = "AND l.is_baseline" if baseline_only else ""
    cols = "l.value * $scale AS value, l.ref_low * $scale AS ref_low, l.ref_high * $scale AS ref_high"
    if stratum:
        sql = (f"SELECT {cols}, c.{stratum} AS level FROM fct_lab_results l JOIN dim_cases c USING (case_id) "
               f"WHERE l.analyte = $analyte {base} AND {numbered(where)}")
        vals = query_df(con, sql, {"scale": info["scale"], "analyte": analyte, **named(params)})
    else:
        cond, cparams = in_cohort(f, "l.case_id")
        vals = query_df(con, f"SELECT {cols} FROM fct_lab_results l WHERE l.analyte = $analyte {base} AND {numbered(cond)}",
                   {"scale": info["scale"], "analyte": analyte, **named(cparams)})
    v = vals["value"].to_numpy(dtype=float)
    hist = histogram(v, extra=(info["ref_low"], info["ref_high"]))
    groups = [("All in cohort", v, vals["ref_low"], vals["ref_high"])]
    per_group = {}
    if stratum and len(vals):
        vocab = vocab if vocab is not None else vocabulary(con)
        for level in stratum_order(stratum, vals["level"]):
            mask = (vals["level"].isna() if level is None else (vals["level"] == level).fillna(False)).to_numpy(dtype=bool)
            sub = vals[mask]
            gv = sub["value"].to_numpy(dtype=float)
            g = labels.stratum_value_label(stratum, level, vocab)
            groups.append((g, gv, sub["ref_low"], sub["ref_high"]))
            if len(hist):
                edges = np.append(hist["bin_start"].to_numpy(), hist["bin_end"].iloc[-1])
                c, _ = np.histogram(np.clip(gv, edges[0], edges[-1]), bins=edges)
                per_group[g] = c
    summary = _summary_rows(groups)
    return {"info": info, "histogram": hist, "histograms": per_group, "summary": summary, "n_values": int(len(v))}


def capp_queries(con: Con, f: CohortFilter, *, si: bool = False) -> dict[str, Any]:
    """Calcium × phosphate product per case from the baseline values (cases with both):
    ``histogram``, ``summary`` (with % above the threshold), ``threshold`` and ``unit``."""
    where, cparams = f.where("ca")
    cond = where
    factors = dict(con.execute(
        "SELECT a.analyte, coalesce(u.factor, 1.0) FROM analytes a LEFT JOIN analyte_units u "
        "ON u.analyte = a.analyte AND u.unit = a.si_unit WHERE a.analyte IN ('calcium', 'phosphate')"
    ).fetchall())
    scale = 1.0 / (factors.get("calcium", 4.008) * factors.get("phosphate", 3.097)) if si else 1.0
    # dim_cases carries each case's baseline calcium x phosphate: a scan of one column, not a join of
    # two slices of the lab table (430-850 ms at a million cases)
    vals = query_df(
        con,
        f"SELECT calcium_phosphate_product * $scale AS capp FROM dim_cases ca "
        f"WHERE calcium_phosphate_product IS NOT NULL AND {numbered(cond)}",
        {"scale": scale, **named(cparams)},
    )
    v = vals["capp"].to_numpy(dtype=float)
    threshold = stats.CAXP_HIGH * scale
    summary = _summary_rows([("All in cohort", v, None, threshold)])
    return {
        "histogram": histogram(v, extra=(threshold,)),
        "summary": summary,
        "threshold": threshold,
        "unit": "mmol²/L²" if si else stats.CAXP_UNIT,
        "n_values": int(len(v)),
    }


def labs_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Everything /labs computes when it opens (default analyte: calcium, canonical units, baseline)."""
    return {"options": lab_options(con), "lab": lab_queries(con, f, "calcium"), "capp": capp_queries(con, f)}
