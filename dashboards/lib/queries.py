"""Every query and statistic the dashboards show, as plain functions of a DuckDB connection.

``con`` is a connection with the published snapshot attached and selected (tables by bare name,
see :func:`orchestration.warehouse.snapshot.connect`); ``f`` is a :class:`~dashboards.lib.cohort.CohortFilter`.
Nothing here imports Streamlit: the pages cache these results (``dashboards.lib.data``), tests and the
benchmark call them directly. Filtering, grouping and counting run in DuckDB; only the columns a
statistic needs reach pandas. Every statistic of a filtered cohort (Kaplan–Meier, survival at fixed
days, log-rank, numeric summaries, mortality by stratum) comes from :mod:`orchestration.analytics.stats`,
the implementation the marts use, so the pages agree with ``mart_*`` for the standard strata.

Which page calls what (each ``*_queries`` function returns a dict of DataFrames and numbers):

========== ===================================================================================
page       functions
========== ===================================================================================
(sidebar)  :func:`filter_options`, :func:`cohort_size`, :func:`vocabulary`
overview   :func:`overview_queries` (``f``)
mortality  :func:`mortality_queries` (``f``, ``stratum``)
organs     :func:`organ_queries` (``f``, ``stratum``)
labs       :func:`lab_options`, :func:`lab_queries` (``f``, ``analyte``, ``si``, ``baseline_only``,
           ``stratum``), :func:`capp_queries` (``f``, ``si``)
cases      :func:`case_list` (``f``, ``search``, ``limit``), :func:`case_detail` (``case_id``),
           :func:`default_case` (``f``)
quality    :func:`quality_queries` (not filtered: quarantine and submissions are registry-wide)
========== ===================================================================================

:data:`PAGES` lists, per page, what it runs when it opens with its default settings, each as
``fn(con, cohort_filter)`` (``bench/run.py`` times them).
"""

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


def _df(con: Con, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
    return con.execute(sql, params if params is not None else []).df()


def _numbered(sql: str) -> str:
    """``?`` placeholders as ``$p0, $p1, ...`` (to mix with named parameters)."""
    parts = sql.split("?")
    return "".join(p + (f"$p{i}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def _named(params: list[Any]) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(params)}


def _in_cohort(f: CohortFilter, column: str = "case_id") -> tuple[str, list[Any]]:
    """A condition restricting a fact table to the cohort (``TRUE`` when nothing is filtered)."""
    if f.is_default:
        return "TRUE", []
    where, params = f.where()
    return f"{column} IN (SELECT case_id FROM dim_cases WHERE {where})", params


def _check_stratum(stratum: str | None) -> None:
    """Strata are column names put into SQL: only the known ones are accepted."""
    if stratum is not None and stratum not in labels.STRATA:
        raise ValueError(f"unknown stratum {stratum!r}: one of {', '.join(labels.STRATA)}")


def _num(v: Any) -> float | None:
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


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def level_key(stratum: str | None, v: Any) -> tuple:
    """Sort key of one level of a stratum: vocabulary order; yes before no; missing last."""
    if _missing(v):
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
    vals = list(dict.fromkeys(None if _missing(v) else v for v in values))
    return sorted(vals, key=lambda v: level_key(stratum, v))


def _sort_levels(df: pd.DataFrame, column: str, stratum: str | None) -> pd.DataFrame:
    order = sorted(range(len(df)), key=lambda i: level_key(stratum, df[column].iloc[i]))
    return df.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------------------------- shared


def vocabulary(con: Con) -> dict[tuple[str, str], str]:
    """(vocabulary, code) -> label, from the published ``vocabularies`` table."""
    rows = con.execute("SELECT vocabulary, code, label FROM vocabularies").fetchall()
    return {(v, c): lab for v, c, lab in rows}


def filter_options(con: Con) -> dict[str, Any]:
    """What the sidebar offers: sites, the index-year range, and the registry's size."""
    sites, lo, hi, n = con.execute(
        "SELECT list(DISTINCT site_id ORDER BY site_id), min(index_year), max(index_year), count(*) FROM dim_cases"
    ).fetchone()
    return {"sites": list(sites or []), "year_bounds": (int(lo), int(hi)) if lo is not None else None, "n_registry": int(n)}


def cohort_size(con: Con, f: CohortFilter) -> dict[str, int]:
    """Cases in the cohort, of which synthetic, and cases in the whole snapshot."""
    where, params = f.where()
    n, n_syn, total = con.execute(
        f"SELECT count(*) FILTER (WHERE {where}), count(*) FILTER (WHERE ({where}) AND is_synthetic), count(*) FROM dim_cases",
        params + params,
    ).fetchone()
    return {"n_cases": int(n), "n_synthetic": int(n_syn or 0), "n_real": int(n) - int(n_syn or 0), "n_registry": int(total)}


# ---------------------------------------------------------------------------------- overview


def overview_queries(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Headline numbers (``summary``, one row) and counts by kidney status, index year and site."""
    where, params = f.where()
    ages = con.execute(f"SELECT age_years FROM dim_cases WHERE {where}", params).fetchnumpy()["age_years"]
    days, died, _, _ = _survival_input(con, f, None, None)
    n_cases, n_sites, n_female, n_syn = con.execute(
        f"SELECT count(*), count(DISTINCT site_id), count(*) FILTER (WHERE sex = 'female'), count(*) FILTER (WHERE is_synthetic) "
        f"FROM dim_cases WHERE {where}",
        params,
    ).fetchone()
    age = stats.lab_summary(np.ma.filled(np.ma.asarray(ages, dtype=float), np.nan))
    surv = stats.survival_summary(days, died)
    summary = {
        "n_cases": int(n_cases),
        "n_synthetic": int(n_syn),
        "n_sites": int(n_sites),
        "age_median": _num(age.get("median")),
        "age_p25": _num(age.get("p25")),
        "age_p75": _num(age.get("p75")),
        "pct_female": (n_female / n_cases) if n_cases else None,
        **{k: surv.get(k) for k in ("n_known_outcome", "n_deaths", "case_fatality", "median_survival_days",
                                    "survival_365d", "ci_lower_365d", "ci_upper_365d")},
    }
    kidney = _df(con, f"SELECT kidney_status, count(*) AS n FROM dim_cases WHERE {where} GROUP BY 1", params)
    kidney["pct"] = kidney["n"] / max(int(n_cases), 1)
    kidney = _sort_levels(kidney, "kidney_status", "kidney_status")
    by_year = _df(
        con,
        f"SELECT index_year, is_synthetic, count(*) AS n FROM dim_cases WHERE {where} GROUP BY ALL ORDER BY ALL",
        params,
    )
    by_site = _df(
        con,
        f"SELECT site_id, is_synthetic, count(*) AS n FROM dim_cases WHERE {where} GROUP BY ALL ORDER BY n DESC, site_id",
        params,
    )
    return {"summary": pd.DataFrame([summary]), "kidney_status": kidney, "by_year": by_year, "by_site": by_site}


# ---------------------------------------------------------------------------------- mortality


def _survival_input(con: Con, f: CohortFilter, stratum: str | None, vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(follow-up days, died as 1/0/NaN, group number, group labels) of the cohort's cases, sorted by
    follow-up (which makes the statistics' own sorting nearly free). Groups are numbered in display
    order; levels with the same label, such as a null and an 'unknown' kidney status, are one group,
    as in the marts."""
    _check_stratum(stratum)
    where, params = f.where()
    if stratum:
        levels = [r[0] for r in con.execute(f"SELECT DISTINCT {stratum} FROM dim_cases WHERE {where}", params).fetchall()]
        levels = sorted(levels, key=lambda v: level_key(stratum, v))
        names: list[str] = []
        group_of_level = []
        for v in levels:
            name = labels.stratum_value_label(stratum, v, vocab)
            if name not in names:
                names.append(name)
            group_of_level.append(names.index(name))
        # the null level sorts last, so a level's position among the non-null ones is its position
        known = [(str(v).lower() if isinstance(v, bool) else str(v)) for v in levels if v is not None]
        level_sql = f"coalesce(list_position($levels, CAST({stratum} AS VARCHAR)) - 1, {len(known)})"
        # one row per (day, outcome, level) with its count: a few thousand rows instead of one per case
        sql = (f"SELECT followup_days AS days, died::TINYINT AS died, {level_sql} AS level, count(*) AS n FROM dim_cases "
               f"WHERE {_numbered(where)} GROUP BY ALL ORDER BY followup_days NULLS LAST, died, level")
        rows = con.execute(sql, {"levels": known, **_named(params)}).fetchnumpy()
        n = np.asarray(rows["n"], dtype=np.int64)
        group = (np.asarray(group_of_level, dtype=np.int64)[np.asarray(rows["level"], dtype=np.int64)] if len(levels)
                 else np.zeros(0, np.int64))
        group = np.repeat(group, n)
    else:
        names = ["All cases"]
        rows = con.execute(f"SELECT followup_days AS days, died::TINYINT AS died, count(*) AS n FROM dim_cases WHERE {where} "
                           "GROUP BY ALL ORDER BY followup_days NULLS LAST, died", params).fetchnumpy()
        n = np.asarray(rows["n"], dtype=np.int64)
        group = np.zeros(int(n.sum()), dtype=np.int64)
    # back to one entry per case (still sorted by follow-up), as orchestration.analytics.stats expects
    days = np.repeat(np.ma.filled(np.ma.asarray(rows["days"], dtype=float), np.nan), n)
    died = np.repeat(np.ma.filled(np.ma.asarray(rows["died"], dtype=float), np.nan), n)
    return days, died, group, names


def mortality_queries(con: Con, f: CohortFilter, stratum: str | None = None, vocab=None) -> dict[str, Any]:
    """Kaplan–Meier curves by group (``curves``), number at risk (``at_risk``), survival at fixed days
    with 95% CIs and case fatality by group (``by_group``), the log-rank p-value (``logrank_p``,
    ``None`` for one group) and causes of death (``causes``)."""
    vocab = vocab if vocab is not None else vocabulary(con)
    days, died, group, names = _survival_input(con, f, stratum, vocab)
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
    causes = _df(
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


# ---------------------------------------------------------------------------------- organs


def organ_queries(con: Con, f: CohortFilter, stratum: str | None = "kidney_status") -> dict[str, Any]:
    """Organ frequency (``frequency``: cases with the organ, % of the cohort), pairwise co-occurrence
    (``cooccurrence``: cases with both organs) and cutaneous-only versus visceral by stratum
    (``by_stratum``).

    One pass over ``fct_organ_involvement``: each case's set of organs as a bit mask, counted per
    distinct mask (a few hundred); frequencies and pairs are then read off the masks."""
    _check_stratum(stratum)
    n_cases = cohort_size(con, f)["n_cases"]
    ref = con.execute("SELECT code, code_group, sort_order FROM vocabularies WHERE vocabulary = 'organ' ORDER BY sort_order").fetchall()
    present = [r[0] for r in con.execute("SELECT DISTINCT organ FROM fct_organ_involvement").fetchall()]
    organs = [r[0] for r in ref] + sorted(o for o in present if o not in {r[0] for r in ref})
    group_of = {r[0]: r[1] for r in ref}
    order_of = {o: i + 1 for i, o in enumerate(organs)}
    cond, cparams = _in_cohort(f)
    masks = con.execute(
        f"""SELECT mask, count(*) AS n FROM (
                SELECT bit_or(1::UBIGINT << (list_position($organs, organ) - 1)::UBIGINT) AS mask
                FROM fct_organ_involvement WHERE {_numbered(cond)} GROUP BY case_id)
            GROUP BY mask""",
        {"organs": organs, **_named(cparams)},
    ).fetchall()
    freq_n = dict.fromkeys(organs, 0)
    pairs: dict[tuple[str, str], int] = {}
    for mask, n in masks:
        have = [o for i, o in enumerate(organs) if int(mask) >> i & 1]
        for i, a in enumerate(have):
            freq_n[a] += n
            for b in have[i + 1:]:
                key = (a, b) if a < b else (b, a)
                pairs[key] = pairs.get(key, 0) + n
    freq = pd.DataFrame(
        [{"organ": o, "organ_group": group_of.get(o, "visceral"), "n": freq_n[o], "sort_order": order_of[o]} for o in organs if freq_n[o]],
        columns=["organ", "organ_group", "n", "sort_order"],
    ).sort_values(["n", "organ"], ascending=[False, True], ignore_index=True)
    freq["pct_of_cases"] = freq["n"] / max(n_cases, 1)
    co = pd.DataFrame([(a, b, n) for (a, b), n in sorted(pairs.items())], columns=["organ_a", "organ_b", "n"])
    where, params = f.where()
    col = stratum or "'All cases'"
    by = _df(
        con,
        f"""SELECT {col} AS level, count(*) AS n_cases,
                   count(*) FILTER (WHERE NOT visceral_involvement) AS n_cutaneous_only,
                   count(*) FILTER (WHERE visceral_involvement) AS n_visceral
            FROM dim_cases WHERE {where} GROUP BY 1""",
        params,
    )
    by = _sort_levels(by, "level", stratum)
    vocab = vocabulary(con)
    by.insert(0, "group", [labels.stratum_value_label(stratum, v, vocab) if stratum else "All cases" for v in by["level"]])
    by = by.drop(columns="level")
    by["pct_cutaneous_only"] = by["n_cutaneous_only"] / by["n_cases"].clip(lower=1)
    by["pct_visceral"] = by["n_visceral"] / by["n_cases"].clip(lower=1)
    return {"n_cases": n_cases, "frequency": freq, "cooccurrence": co, "by_stratum": by}


# ---------------------------------------------------------------------------------- labs


def _has_table(con: Con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?",
                            [name]).fetchone()[0])


def lab_options(con: Con) -> pd.DataFrame:
    """Analytes with their label, units, default reference range, SI factor and number of cases with a
    (baseline) value in the registry, from ``mart_lab_distributions`` when it is published."""
    counts = ("SELECT analyte, n AS n_cases FROM mart_lab_distributions" if _has_table(con, "mart_lab_distributions")
              else "SELECT analyte, count(*) AS n_cases FROM fct_lab_results WHERE is_baseline GROUP BY 1")
    return _df(
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
    row = _df(
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
    _check_stratum(stratum)
    info = _analyte(con, analyte, si)
    where, params = f.where("c")
    base = "AND l.is_baseline" if baseline_only else ""
    cols = "l.value * $scale AS value, l.ref_low * $scale AS ref_low, l.ref_high * $scale AS ref_high"
    if stratum:
        sql = (f"SELECT {cols}, c.{stratum} AS level FROM fct_lab_results l JOIN dim_cases c USING (case_id) "
               f"WHERE l.analyte = $analyte {base} AND {_numbered(where)}")
        vals = _df(con, sql, {"scale": info["scale"], "analyte": analyte, **_named(params)})
    else:
        cond, cparams = _in_cohort(f, "l.case_id")
        vals = _df(con, f"SELECT {cols} FROM fct_lab_results l WHERE l.analyte = $analyte {base} AND {_numbered(cond)}",
                   {"scale": info["scale"], "analyte": analyte, **_named(cparams)})
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
    vals = _df(
        con,
        f"SELECT calcium_phosphate_product * $scale AS capp FROM dim_cases ca "
        f"WHERE calcium_phosphate_product IS NOT NULL AND {_numbered(cond)}",
        {"scale": scale, **_named(cparams)},
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


# ---------------------------------------------------------------------------------- cases


def _search(search: str) -> tuple[str, list[Any]]:
    s = (search or "").strip()
    if not s:
        return "TRUE", []
    like = f"%{s}%"
    return "(case_id ILIKE ? OR site_id ILIKE ? OR source ILIKE ?)", [like, like, like]


def _sites(sites: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    """The rows a user may read: ``sites`` None is every site (coordinator, analyst); a tuple is
    site_staff's own sites (empty: none). Case-level queries AND this into their WHERE clause, so a
    site's staff never read another site's rows, whatever the page asks for."""
    if sites is None:
        return "TRUE", []
    if not sites:
        return "FALSE", []
    return f"site_id IN ({', '.join('?' for _ in sites)})", list(sites)


def case_list(con: Con, f: CohortFilter, search: str = "", limit: int | None = 5000,
              sites: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Cases of the cohort matching ``search`` (case ID, site or source, case-insensitive): ``cases``
    (real cases first, at most ``limit`` rows) and ``n_matching``; only ``sites`` when given."""
    where, params = f.where()
    s_sql, s_params = _search(search)
    scope, scope_params = _sites(sites)
    s_sql, s_params = f"{s_sql} AND {scope}", s_params + scope_params
    n = con.execute(f"SELECT count(*) FROM dim_cases WHERE ({where}) AND {s_sql}", params + s_params).fetchone()[0]
    lim = "" if limit is None else f"LIMIT {int(limit)}"
    df = _df(
        con,
        f"SELECT {', '.join(CASE_LIST_COLUMNS)} FROM dim_cases WHERE ({where}) AND {s_sql} "
        f"ORDER BY is_synthetic, case_id {lim}",
        params + s_params,
    )
    return {"cases": df, "n_matching": int(n)}


def default_case(con: Con, f: CohortFilter, sites: tuple[str, ...] | None = None) -> str | None:
    """The case shown when none is picked: the cohort's first real case, else its first case."""
    where, params = f.where()
    scope, scope_params = _sites(sites)
    row = con.execute(f"SELECT case_id FROM dim_cases WHERE ({where}) AND {scope} ORDER BY is_synthetic, case_id LIMIT 1",
                      params + scope_params).fetchone()
    return row[0] if row else None


def case_detail(con: Con, case_id: str, sites: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """Every published fact of one case: ``case`` (its dim_cases row as a dict), ``organs``,
    ``lesions``, ``treatments``, ``labs`` (with the analyte's label and reference range) and
    ``revisions``; ``None`` when there is no such case (among ``sites``, when given)."""
    scope, scope_params = _sites(sites)
    case = _df(con, f"SELECT * FROM dim_cases WHERE case_id = ? AND {scope}", [case_id] + scope_params)
    if case.empty:
        return None
    organs = _df(
        con,
        """SELECT o.organ, o.organ_group, o.evidence FROM fct_organ_involvement o
           LEFT JOIN vocabularies v ON v.vocabulary = 'organ' AND v.code = o.organ
           WHERE o.case_id = ? ORDER BY v.sort_order, o.organ""",
        [case_id],
    )
    lesions = _df(con, "SELECT site, site_group, laterality, features FROM fct_lesions WHERE case_id = ? ORDER BY lesion_index", [case_id])
    treatments = _df(con, "SELECT treatment, day FROM fct_treatments WHERE case_id = ? ORDER BY treatment_index", [case_id])
    labs = _df(
        con,
        """SELECT l.analyte, a.label AS analyte_label, l.day, l.value, l.unit, l.value_reported, l.unit_reported,
                  l.ref_low, l.ref_high, l.flag, l.ref_range_from_record, l.is_baseline
           FROM fct_lab_results l LEFT JOIN analytes a USING (analyte)
           WHERE l.case_id = ? ORDER BY l.day NULLS LAST, l.lab_index""",
        [case_id],
    )
    revisions = _df(
        con,
        "SELECT revision, site_id, source, submitted_at, is_current FROM dim_case_revisions WHERE case_id = ? ORDER BY revision",
        [case_id],
    )
    return {
        "case": case.iloc[0].to_dict(),
        "organs": organs,
        "lesions": lesions,
        "treatments": treatments,
        "labs": labs,
        "revisions": revisions,
    }


# ---------------------------------------------------------------------------------- quality

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
    parts = []
    for col, (applies, unknown) in COMPLETENESS_FIELDS.items():
        known = f"{col} IS NOT NULL" + (f" AND CAST({col} AS VARCHAR) <> '{unknown}'" if unknown else "")
        parts.append(f"count(*) FILTER (WHERE {applies}) AS \"{col}__n\", count(*) FILTER (WHERE ({applies}) AND {known}) AS \"{col}__k\"")
    row = con.execute(f"SELECT {', '.join(parts)} FROM dim_cases").fetchone()
    out = []
    for i, col in enumerate(COMPLETENESS_FIELDS):
        n, k = row[2 * i], row[2 * i + 1]
        applies = COMPLETENESS_FIELDS[col][0]
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
    quarantine = _df(
        con,
        """SELECT quarantined_at, case_id, revision, n_errors, reasons, source_file, record, channel,
                  is_resolved, resolved_at, resolution_note, quarantine_id
           FROM quality_quarantine ORDER BY quarantined_at DESC, quarantine_id""",
    )
    submissions = _df(con, "SELECT day, n_accepted, n_quarantined FROM quality_submissions ORDER BY day")
    return {"quarantine": quarantine, "completeness": completeness(con), "submissions": submissions}


# ---------------------------------------------------------------------------------- per page

DEFAULT_FILTER = CohortFilter()
#: The stratum each page opens with.
DEFAULT_MORTALITY_STRATUM = "visceral_involvement"
DEFAULT_ORGAN_STRATUM = "kidney_status"


def labs_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    """Everything /labs computes when it opens (default analyte: calcium, canonical units, baseline)."""
    return {"options": lab_options(con), "lab": lab_queries(con, f, "calcium"), "capp": capp_queries(con, f)}


def cases_page(con: Con, f: CohortFilter, sites: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Everything /cases computes when it opens: the case list and the default case's details."""
    listing = case_list(con, f, sites=sites)
    cid = default_case(con, f, sites)
    return {**listing, "detail": case_detail(con, cid, sites) if cid else None}


def mortality_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    return mortality_queries(con, f, DEFAULT_MORTALITY_STRATUM)


def organs_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    return organ_queries(con, f, DEFAULT_ORGAN_STRATUM)


def quality_page(con: Con, f: CohortFilter | None = None) -> dict[str, Any]:
    return quality_queries(con)


def sidebar(con: Con, f: CohortFilter) -> dict[str, Any]:
    return {"options": filter_options(con), "size": cohort_size(con, f), "vocabulary": vocabulary(con)}


#: What each page runs when it opens, as ``fn(con, cohort_filter)`` (read by ``bench/run.py``).
PAGES: dict[str, list] = {
    "sidebar": [sidebar],
    "overview": [overview_queries],
    "mortality": [mortality_page],
    "organs": [organs_page],
    "labs": [labs_page],
    "cases": [cases_page],
    "quality": [quality_page],
}


def sql_schema(con: Con) -> pd.DataFrame:
    """The /sql page's schema browser: every queryable table and column with its description."""
    from dashboards.lib.sql_console import schema

    return schema(con)
