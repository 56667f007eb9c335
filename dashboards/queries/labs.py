"""The Labs page: baseline (or all) lab values of one analyte against reference ranges, and Ca x P."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dashboards.lib import labels
from dashboards.lib.cohort import CohortFilter
from dashboards.queries.common import (
    HIST_BINS,
    Con,
    check_stratum,
    has_table,
    in_cohort,
    named,
    numbered,
    query_df,
    stratum_order,
    vocabulary,
)
from orchestration.analytics import stats


#: The whole registry's lab values counted per (analyte, baseline, value, range): the page's default cohort.
VALUE_COUNTS = "mart_lab_value_counts"


def lab_options(con: Con) -> pd.DataFrame:
    """Analytes with their label, units, default reference range, SI factor and number of cases with a
    (baseline) value in the registry, from ``mart_lab_distributions`` when it is published."""
    counts = ("SELECT analyte, n AS n_cases FROM mart_lab_distributions" if has_table(con, "mart_lab_distributions")
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
    uniq, counts = np.unique(v[~np.isnan(v)], return_counts=True)
    return histogram_counts(uniq, counts.astype(np.int64), extra=extra, bins=bins)


def histogram_counts(uniq: np.ndarray, counts: np.ndarray, *, extra: tuple[float | None, ...] = (), bins: int = HIST_BINS) -> pd.DataFrame:
    """:func:`histogram` of the values in which each distinct value ``uniq[i]`` (sorted, no NaN) occurs
    ``counts[i]`` times: the same bins and counts, from a few hundred rows instead of one per value."""
    if uniq.size == 0:
        return pd.DataFrame(columns=["bin_start", "bin_end", "n"])
    lo, hi = stats.quantiles_counted(uniq, counts, [0.005, 0.995])
    for x in extra:
        if x is not None and not math.isnan(x) and x > 0:
            lo, hi = min(lo, x), max(hi, x)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = _nice_width((hi - lo) / bins)
    lo, hi = math.floor(lo / width) * width, math.ceil(hi / width) * width
    n_bins = max(1, int(round((hi - lo) / width)))
    # numpy assigns each value to its bin as without weights; integer weights sum exactly
    n, edges = np.histogram(np.clip(uniq, lo, hi), bins=n_bins, range=(lo, hi), weights=counts)
    out = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "n": n.astype(np.int64)})
    out.attrs["clipped"] = int(counts[(uniq < lo) | (uniq > hi)].sum())
    return out


def lab_queries(con: Con, f: CohortFilter, analyte: str = "calcium", *, si: bool = False, baseline_only: bool = True,
                stratum: str | None = None, vocab=None) -> dict[str, Any]:
    """One analyte in the cohort: ``info`` (label, unit, default reference range in the chosen units),
    ``histogram`` (overall), ``histograms`` (per group, same bins, when stratified) and ``summary``
    (n, mean, SD, quartiles, % below/above the default range; overall first, then per group)."""
    check_stratum(stratum)
    info = _analyte(con, analyte, si)
    where, params = f.where("c")
    base = "AND l.is_baseline" if baseline_only else ""
    # counted per distinct (value, limits[, level]) in DuckDB: a few hundred rows reach Python, not one per value
    cols = "l.value * $scale AS value, l.ref_low * $scale AS ref_low, l.ref_high * $scale AS ref_high"
    if not stratum and f.is_default and has_table(con, VALUE_COUNTS):
        # the whole registry: its values are already counted (a few thousand rows, no scan of the lab table)
        rows = con.execute(f"SELECT {cols}, l.n_values AS n FROM {VALUE_COUNTS} l WHERE l.analyte = $analyte {base}",
                           {"scale": info["scale"], "analyte": analyte}).fetchnumpy()
    elif stratum:
        sql = (f"SELECT {cols}, c.{stratum} AS level, count(*) AS n FROM fct_lab_results l JOIN dim_cases c USING (case_id) "
               f"WHERE l.analyte = $analyte {base} AND {numbered(where)} GROUP BY ALL")
        rows = con.execute(sql, {"scale": info["scale"], "analyte": analyte, **named(params)}).fetchnumpy()
    else:
        cond, cparams = in_cohort(f, "l.case_id")
        rows = con.execute(f"SELECT {cols}, count(*) AS n FROM fct_lab_results l WHERE l.analyte = $analyte {base} AND {numbered(cond)} "
                           "GROUP BY ALL", {"scale": info["scale"], "analyte": analyte, **named(cparams)}).fetchnumpy()
    v, lo, hi = (np.ma.filled(np.ma.asarray(rows[c], dtype=float), np.nan) for c in ("value", "ref_low", "ref_high"))
    n = np.asarray(rows["n"], dtype=np.int64)
    uniq, counts = stats.distinct_counts(v, n)
    hist = histogram_counts(uniq, counts, extra=(info["ref_low"], info["ref_high"]))
    summaries = [{"group": "All in cohort", **stats.lab_summary_counts(v, lo, hi, n)}]
    per_group = {}
    if stratum and n.size:
        vocab = vocab if vocab is not None else vocabulary(con)
        level = rows["level"]
        values = np.ma.asarray(level, dtype=object).tolist() if np.ma.isMaskedArray(level) else level.tolist()
        for lv in stratum_order(stratum, values):
            mask = np.fromiter((x is None if lv is None else (x is not None and x == lv) for x in values), dtype=bool, count=len(values))
            g = labels.stratum_value_label(stratum, lv, vocab)
            summaries.append({"group": g, **stats.lab_summary_counts(v[mask], lo[mask], hi[mask], n[mask])})
            if len(hist):
                gu, gc = stats.distinct_counts(v[mask], n[mask])
                edges = np.append(hist["bin_start"].to_numpy(), hist["bin_end"].iloc[-1])
                c, _ = np.histogram(np.clip(gu, edges[0], edges[-1]), bins=edges, weights=gc)
                per_group[g] = c.astype(np.int64)
    summary = pd.DataFrame(summaries)
    return {"info": info, "histogram": hist, "histograms": per_group, "summary": summary, "n_values": int(n.sum())}


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
    if f.is_default and has_table(con, VALUE_COUNTS):  # the whole registry: counted in the mart
        rows = con.execute(f"SELECT value * $scale AS capp, n_values AS n FROM {VALUE_COUNTS} WHERE analyte = '{stats.CAXP_ANALYTE}'",
                           {"scale": scale}).fetchnumpy()
    else:
        rows = con.execute(
            f"SELECT calcium_phosphate_product * $scale AS capp, count(*) AS n FROM dim_cases ca "
            f"WHERE calcium_phosphate_product IS NOT NULL AND {numbered(cond)} GROUP BY 1",
            {"scale": scale, **named(cparams)},
        ).fetchnumpy()
    v = np.ma.filled(np.ma.asarray(rows["capp"], dtype=float), np.nan)
    n = np.asarray(rows["n"], dtype=np.int64)
    threshold = stats.CAXP_HIGH * scale
    summary = pd.DataFrame([{"group": "All in cohort", **stats.lab_summary_counts(v, None, threshold, n)}])
    uniq, counts = stats.distinct_counts(v, n)
    return {
        "histogram": histogram_counts(uniq, counts, extra=(threshold,)),
        "summary": summary,
        "threshold": threshold,
        "unit": "mmol²/L²" if si else stats.CAXP_UNIT,
        "n_values": int(n.sum()),
    }


def labs_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Everything /labs computes when it opens (default analyte: calcium, canonical units, baseline)."""
    return {"options": lab_options(con), "lab": lab_queries(con, f, "calcium"), "capp": capp_queries(con, f)}
