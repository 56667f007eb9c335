"""Disclosure mode of the aggregate pages (``/``, ``/mortality``, ``/organs``, ``/labs``).

Each ``protect_*`` function takes what the page's queries returned and gives back the same
figures under the policy (``orchestration.analytics.disclosure``, rules in ``docs/disclosure.md``):
tables whose suppressed cells read ``suppressed``, safe Kaplan-Meier curves, lab summaries without
minimum or maximum. The ``*_figure`` functions draw charts from these protected frames only. No
Streamlit here except in :func:`active` (which reads the session).

When is the mode on? On the public dashboard (``registry serve --public``; its entry script sets
:data:`PUBLIC_STATE`), and for a signed-in user whose only role is ``viewer`` (the access code puts the
user's roles, a set of names, into ``st.session_state["registry_user_roles"]`` on every run). No roles
in the session means the single-user dashboards of a coordinator: exact figures.
"""

from __future__ import annotations

import io
import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from orchestration.analytics import disclosure as dc
from orchestration.registry.textsafety import to_safe_csv

MARK = dc.MARK
#: session key set by the public entry script
PUBLIC_STATE = "registry_public"
#: session key set by the access code: the signed-in user's roles
ROLES_STATE = "registry_user_roles"
#: roles that see exact figures
EXACT_ROLES = frozenset({"analyst", "coordinator", "admin"})


def restricted(public: bool, roles: Iterable[str] | None) -> bool:
    """Whether figures go through the policy: always on the public dashboard; for a signed-in user
    whose roles are only ``viewer`` (no role that sees exact figures); never without roles."""
    if public:
        return True
    if roles is None:
        return False
    roles = {str(r).lower() for r in roles}
    return not (roles & EXACT_ROLES)


def active(session: Mapping[str, Any]) -> bool:
    return restricted(bool(session.get(PUBLIC_STATE)), session.get(ROLES_STATE))


def _hidden(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _show(v: Any, hide: bool) -> Any:
    return MARK if hide else v


def csv_bytes(df: pd.DataFrame, k: int) -> bytes:
    """The suppressed table as CSV, with a first comment row saying so."""
    buf = io.StringIO()
    buf.write(f"# suppressed table: minimum cell size k={k}; '{MARK}' marks a count of 1-{k - 1} or a cell from which one could be derived\n")
    buf.write(to_safe_csv(df))  # no spreadsheet formulas from submitted text
    return buf.getvalue().encode("utf-8")


def csv_name(name: str, k: int) -> str:
    return f"{name}_suppressed_k{k}"


# ----------------------------------------------------------------------------- cohort and levels


def refusal(n_cases: int, n_registry: int, k: int) -> str | None:
    """One line when the cohort may show no figure at all, else None."""
    if n_cases < k:
        return (f"Fewer than {k} cases match this filter: no figures are shown (disclosure control, minimum cell size k = {k}). "
                "Widen the filter.")
    if 0 < n_registry - n_cases < k:
        return (f"This filter leaves out fewer than {k} cases of the registry, who could be singled out by comparison with "
                f"the whole registry: no figures are shown (minimum cell size k = {k}). Widen or remove the filter.")
    return None


def cohort_text(size: Mapping[str, int], k: int) -> str:
    """The cohort's size as the page header and the sidebar show it in disclosure mode."""
    n, total = int(size["n_cases"]), int(size["n_registry"])
    if n < k:
        return f"< {k} cases"
    if 0 < total - n < k:
        return f"{MARK} (all but fewer than {k} of the registry's cases)"
    return f"{n:,} cases of {total:,}"


def synthetic_text(size: Mapping[str, int], k: int) -> str | None:
    n, n_syn = int(size["n_cases"]), int(size.get("n_synthetic") or 0)
    if not n_syn or n < k:
        return None
    mask = dc.suppress_counts([n - n_syn, n_syn], k)
    if mask.any():
        return "**Includes synthetic cases** (how many is suppressed under the disclosure policy), generated for testing and demonstration."
    return f"**Includes synthetic cases (n={n_syn:,})**, generated for testing and demonstration; {n - n_syn:,} real."


LEVEL_COLUMNS = ("sex", "age_band", "kidney_status", "lesion_distribution", "site_id", "diabetes", "warfarin",
                 "visceral_involvement")


def level_counts(con) -> dict[str, dict[str, int]]:
    """Cases per level of every filter column in the whole snapshot (booleans as yes / no / unknown)."""
    out: dict[str, dict[str, int]] = {}
    for col in LEVEL_COLUMNS:
        rows = con.execute(f"SELECT {col}, count(*) FROM dim_cases GROUP BY 1").fetchall()
        d: dict[str, int] = {}
        for v, n in rows:
            if isinstance(v, bool):
                key = "yes" if v else "no"
            elif v is None:
                key = "unknown"
            else:
                key = str(v)
            d[key] = d.get(key, 0) + int(n)
        out[col] = d
    return out


def offered(options: Iterable[str], counts: Mapping[str, int], k: int, *, keep: Iterable[str] = ()) -> list[str]:
    """The options of a filter widget that may be offered (levels with at least k cases; ``keep``:
    options that are not levels, such as "any")."""
    keep = set(keep)
    return [o for o in options if o in keep or counts.get(o, 0) >= k]


def split(n_part: int | None, n_total: int, k: int) -> bool:
    """Whether a part of a total must be hidden (it or its complement is small)."""
    if n_part is None:
        return True
    return bool(dc.suppress_counts([int(n_part), int(n_total) - int(n_part)], k)[0])


# ----------------------------------------------------------------------------- overview


def outcome_mask(n_cases: int, n_known: int, n_deaths: int, k: int) -> np.ndarray:
    """Mask of (deaths, alive, unknown outcome) of a cohort."""
    return dc.suppress_counts([n_deaths, n_known - n_deaths, n_cases - n_known], k)


def distribution(df: pd.DataFrame, count: str, k: int, *, pct: str | None = None) -> pd.DataFrame:
    """A one-way distribution (rows = categories, ``count`` column; its total is the cohort or shown)."""
    out = df.copy()
    mask = dc.suppress_counts(out[count].to_numpy(), k) if len(out) else np.zeros(0, dtype=bool)
    out[count] = [_show(int(v), m) for v, m in zip(out[count], mask)]
    if pct and pct in out.columns:
        out[pct] = [_show(v, m) for v, m in zip(out[pct], mask)]
    out.attrs["suppressed"] = int(mask.sum())
    return out


def protect_overview(res: dict[str, Any], curve: pd.DataFrame, k: int) -> dict[str, Any]:
    """Headline figures (``summary``: name -> value or MARK) and the distributions by kidney status,
    index year and site (totals only, no real/synthetic split), from :func:`overview_queries`'s result
    and the cohort's Kaplan-Meier curve."""
    s = res["summary"].iloc[0].to_dict()
    n = int(s["n_cases"])
    n_known, n_deaths = int(s["n_known_outcome"]), int(s["n_deaths"])
    om = outcome_mask(n, n_known, n_deaths, k)
    syn = dc.suppress_counts([n - int(s["n_synthetic"]), int(s["n_synthetic"])], k)
    n_female = None if s["pct_female"] is None or _hidden(s["pct_female"]) else round(float(s["pct_female"]) * n)
    safe = dc.safe_curve(curve, k)
    s365 = dc.safe_survival_at(safe, 365)
    med_status, med = dc.safe_median(safe)
    known_shown = not om[2]
    summary = {
        "n_cases": n,
        "n_synthetic": _show(int(s["n_synthetic"]), syn[1]),
        "n_real": _show(n - int(s["n_synthetic"]), syn[0]),
        "n_sites": int(s["n_sites"]),
        "age_median": s["age_median"] if n >= k else None,
        "age_p25": s["age_p25"] if n >= k else None,
        "age_p75": s["age_p75"] if n >= k else None,
        "pct_female": _show(s["pct_female"], n_female is None or split(n_female, n, k)),
        "n_known_outcome": _show(n_known, not known_shown),
        "n_deaths": _show(n_deaths, om[0]),
        "case_fatality": _show(s["case_fatality"], om[0] or not known_shown),
        "survival_365d": s365[0], "ci_lower_365d": s365[1], "ci_upper_365d": s365[2],
        "median_status": med_status, "median_survival_days": med,
    }
    kidney = distribution(res["kidney_status"], "n", k, pct="pct")
    year = res["by_year"].assign(index_year=lambda d: d["index_year"]).groupby("index_year", dropna=False, as_index=False)["n"].sum()
    site = res["by_site"].groupby("site_id", dropna=False, as_index=False)["n"].sum().sort_values(["n", "site_id"], ascending=[False, True])
    return {"summary": summary, "kidney_status": kidney, "by_year": distribution(year, "n", k),
            "by_site": distribution(site.reset_index(drop=True), "n", k), "outcome_mask": om}


# ----------------------------------------------------------------------------- mortality


def protect_mortality(res: dict[str, Any], k: int, *, cohort: dict[str, int], at_risk_days: Iterable[int],
                      survival_days: Iterable[int]) -> dict[str, Any]:
    """Safe curves (``curves``: group, day, survival, ci_lower, ci_upper), ``at_risk`` (rounded to
    multiples of k), ``table`` (the by-group table with marks), ``logrank_p`` (None unless every
    group has >= k cases), ``causes`` and the list of groups drawn."""
    by = res["by_group"]
    groups = list(res["groups"])
    n_cases = by["n_cases"].astype(int).to_numpy()
    n_known = by["n_known_outcome"].astype(int).to_numpy()
    n_deaths = by["n_deaths"].astype(int).to_numpy()
    cells = np.stack([n_deaths, n_known - n_deaths, n_cases - n_known], axis=1)
    total = cells.sum(axis=0)
    col_m = outcome_mask(int(total.sum()), int(total[0] + total[1]), int(total[0]), k)
    row_m = dc.suppress_counts(n_cases, k)
    cm, rm, _, _ = dc.suppress_table(cells, k, row_total_hidden=row_m, col_total_hidden=col_m)
    curves, rows, drawn = [], [], []
    raw = res["curves"]
    for i, g in enumerate(groups):
        safe = dc.safe_curve(raw[raw["group"] == g] if len(raw) else raw, k) if not rm[i] else dc.safe_curve(None, k)
        if len(safe):
            curves.append(safe.assign(group=g))
            drawn.append(g)
        known_shown = (not cm[i, 0] and not cm[i, 1]) or (not rm[i] and not cm[i, 2])
        row = {"group": g, "n_cases": _show(int(n_cases[i]), rm[i]), "n_known_outcome": _show(int(n_known[i]), not known_shown),
               "n_deaths": _show(int(n_deaths[i]), cm[i, 0]),
               "case_fatality": _show(by["case_fatality"].iloc[i], cm[i, 0] or not known_shown)}
        for d in survival_days:
            sv, lo, hi = dc.safe_survival_at(safe, d)
            row[f"survival_{d}d"], row[f"ci_lower_{d}d"], row[f"ci_upper_{d}d"] = (MARK, MARK, MARK) if sv is None else (sv, lo, hi)
        status, med = dc.safe_median(safe)
        row["median_survival_days"] = med if status == "reached" else ("not reached" if status == "not reached" else MARK)
        rows.append(row)
    table = pd.DataFrame(rows)
    at = res["at_risk"].copy()
    day_cols = [c for c in at.columns if c != "group"]
    at = at.astype({c: object for c in day_cols})
    for i in range(len(at)):
        vals = dc.safe_at_risk(at.loc[i, day_cols].tolist(), k)
        if i < len(rm) and rm[i]:
            vals = [None] * len(vals)
        for c, v in zip(day_cols, vals):
            at.loc[i, c] = MARK if v is None else v
    p = res.get("logrank_p")
    if p is not None and (n_cases < k).any():
        p = None
    causes = res["causes"].copy()
    if col_m[0]:
        causes["n"] = MARK
        causes["pct_of_deaths"] = MARK
        causes.attrs["suppressed"] = len(causes)
    else:
        causes = distribution(causes, "n", k, pct="pct_of_deaths")
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[*dc.SAFE_CURVE_COLUMNS, "group"])
    return {"curves": curves_df, "groups": drawn, "table": table, "at_risk": at, "logrank_p": p, "causes": causes,
            "n_groups_hidden": int(rm.sum())}


# ----------------------------------------------------------------------------- organs


def protect_organs(res: dict[str, Any], k: int) -> dict[str, Any]:
    n = int(res["n_cases"])
    freq = res["frequency"].copy()
    hide = [split(int(v), n, k) for v in freq["n"]]
    n_of = dict(zip(freq["organ"], [None if h else int(v) for v, h in zip(freq["n"], hide)]))
    freq["n"] = [_show(int(v), h) for v, h in zip(freq["n"], hide)]
    freq["pct_of_cases"] = [_show(v, h) for v, h in zip(freq["pct_of_cases"], hide)]
    co = res["cooccurrence"].copy()
    co_hide = []
    for a, b, v in zip(co["organ_a"], co["organ_b"], co["n"]):
        v = int(v)
        h = 1 <= v < k
        for o in (a, b):  # "o without the other organ" is a derived count
            if n_of.get(o) is not None and 1 <= n_of[o] - v < k:
                h = True
        co_hide.append(h)
    co["n"] = [_show(int(v), h) for v, h in zip(co["n"], co_hide)]
    by = res["by_stratum"].copy()
    n_c = by["n_cases"].astype(int).to_numpy()
    cut, vis = by["n_cutaneous_only"].astype(int).to_numpy(), by["n_visceral"].astype(int).to_numpy()
    cells = np.stack([cut, vis, n_c - cut - vis], axis=1)
    row_m = dc.suppress_counts(n_c, k)
    cm, rm, _, _ = dc.suppress_table(cells, k, row_total_hidden=row_m)
    by["n_cases"] = [_show(int(v), m) for v, m in zip(n_c, rm)]
    by["n_cutaneous_only"] = [_show(int(v), m) for v, m in zip(cut, cm[:, 0])]
    by["n_visceral"] = [_show(int(v), m) for v, m in zip(vis, cm[:, 1])]
    by["pct_cutaneous_only"] = [_show(v, m or r) for v, m, r in zip(by["pct_cutaneous_only"], cm[:, 0], rm)]
    by["pct_visceral"] = [_show(v, m or r) for v, m, r in zip(by["pct_visceral"], cm[:, 1], rm)]
    return {"n_cases": n, "frequency": freq, "cooccurrence": co, "by_stratum": by}


# ----------------------------------------------------------------------------- labs


SUMMARY_COLUMNS = ("group", "n", "median", "p25", "p75", "mean", "sd", "pct_low", "pct_high")


def at_least(k: int) -> str:
    """The text of a group size that is hidden although at least k (its complement is small)."""
    return f"{MARK} (≥{k})"


def protect_lab_summary(summary: pd.DataFrame, k: int, *, low: bool = True, cohort_n: int | None = None) -> pd.DataFrame:
    """Rows of :func:`lab_queries`'s ``summary`` (first the whole cohort, then each group) under the
    policy: no min / max; quantiles, mean and SD only for a shown n >= k; the counts below / within /
    above range suppressed as a table (groups x 3) whose margins are the groups' sizes and the
    cohort row. ``cohort_n``: the cohort's size when each case has at most one value (baseline values):
    the cases without a value are then a derived count too; when they are 1 .. k-1 no size and no
    percentage is shown (a percentage would give the size back), only quartiles of groups of >= k."""
    if summary.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    n = summary["n"].fillna(0).astype(int).to_numpy()
    nl = summary["n_low"].fillna(0).astype(int).to_numpy()
    nh = summary["n_high"].fillna(0).astype(int).to_numpy()
    tri = np.stack([nl, n - nl - nh, nh], axis=1)
    top_n_hidden = n[0] < k
    top_m = dc.suppress_counts(tri[0], k) if not top_n_hidden else np.ones(3, dtype=bool)
    n_hidden = [top_n_hidden]
    masks = [top_m]
    if len(summary) > 1:
        groups = tri[1:]
        row_m = dc.suppress_counts(n[1:], k)
        if top_n_hidden:
            row_m[:] = True
            cm = np.ones_like(groups, dtype=bool)
        else:
            cm, row_m, _, _ = dc.suppress_table(groups, k, row_total_hidden=row_m, col_total_hidden=top_m)
        n_hidden += list(row_m)
        masks += list(cm)
    sizes_hidden = cohort_n is not None and n[0] >= k and split(int(n[0]), int(cohort_n), k)
    if sizes_hidden:
        n_hidden = [True] * len(summary)
        masks = [np.ones(3, dtype=bool)] * len(summary)
    rows = []
    for i in range(len(summary)):
        r = summary.iloc[i]
        nh_i = bool(n_hidden[i])
        q_ok = (not nh_i or sizes_hidden) and n[i] >= k
        row = {"group": r["group"], "n": (at_least(k) if n[i] >= k else MARK) if sizes_hidden else _show(int(n[i]), nh_i)}
        for c in ("median", "p25", "p75", "mean", "sd"):
            row[c] = r[c] if q_ok else MARK
        m = masks[i]
        row["pct_low"] = _show(r["pct_low"], nh_i or m[0]) if low else None
        row["pct_high"] = _show(r["pct_high"], nh_i or m[2])
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if not low:
        out = out.drop(columns="pct_low")
    return out


# ----------------------------------------------------------------------------- charts (protected frames only)

_BLUE = "#2b6cb0"


def _layout(fig: go.Figure, title: str, k: int, note: str | None, n_hidden: int = 0) -> go.Figure:
    sub = f"Minimum cell size k = {k}" + (f" · {n_hidden} suppressed" if n_hidden else "") + (f" · {note}" if note else "")
    fig.update_layout(title={"text": f"{title}<br><sup>{sub}</sup>"}, template="plotly_white", height=380,
                      margin={"l": 40, "r": 20, "t": 70, "b": 40}, showlegend=False)
    return fig


def bar_figure(df: pd.DataFrame, label: str, count: str, title: str, k: int, *, note: str | None = None,
               labels: Iterable[str] | None = None, horizontal: bool = False) -> go.Figure:
    """Bars of the shown counts; a suppressed category is drawn as an empty, hatched marker bar labelled
    'suppressed' (no height)."""
    names = list(labels) if labels is not None else [str(v) for v in df[label]]
    shown = [None if v == MARK else v for v in df[count]]
    hidden = sum(v is None for v in shown)
    top = max([v for v in shown if v] or [1])  # all zero: still a 0..1 axis from zero
    fig = go.Figure()
    kw = dict(orientation="h") if horizontal else {}
    xy = (lambda a, b: {"x": b, "y": a}) if horizontal else (lambda a, b: {"x": a, "y": b})
    fig.add_bar(**xy(names, [v if v is not None else 0 for v in shown]), marker_color=_BLUE, **kw,
                text=[f"{v:,}" if v is not None else "" for v in shown], textposition="outside")
    if hidden:
        fig.add_bar(**xy(names, [top * 0.04 if v is None else 0 for v in shown]), marker={"color": "#bbbbbb", "pattern": {"shape": "/"}},
                    text=[MARK if v is None else "" for v in shown], textposition="outside", **kw)
    fig.update_layout(barmode="overlay")
    (fig.update_xaxes if horizontal else fig.update_yaxes)(rangemode="tozero", range=[0, top * 1.15])
    return _layout(fig, title, k, note, hidden)


def km_figure(curves: pd.DataFrame, groups: list[str], title: str, k: int, *, note: str | None = None, bands: bool = True) -> go.Figure:
    fig = go.Figure()
    palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16"]
    for i, g in enumerate(groups):
        c = curves[curves["group"] == g]
        if c.empty:
            continue
        col = palette[i % len(palette)]
        x = c["day"].to_numpy(dtype=float)
        if bands:
            fig.add_scatter(x=x, y=c["ci_upper"] * 100, mode="lines", line={"width": 0, "shape": "hv"}, hoverinfo="skip", showlegend=False)
            fig.add_scatter(x=x, y=c["ci_lower"] * 100, mode="lines", line={"width": 0, "shape": "hv"}, fill="tonexty",
                            fillcolor="rgba(43,108,176,0.12)", hoverinfo="skip", showlegend=False)
        fig.add_scatter(x=x, y=c["survival"] * 100, mode="lines", name=g, line={"color": col, "width": 2.2, "shape": "hv"},
                        hovertemplate="Day %{x:,}: %{y:.1f}%<extra>" + g + "</extra>")
    fig.update_xaxes(title="Days since presentation (day 0)")
    fig.update_yaxes(title="Surviving (%)", range=[0, 101], ticksuffix="%")
    fig = _layout(fig, title, k, note)
    fig.update_layout(showlegend=len(groups) > 1, height=440)
    fig.add_annotation(text=f"Steps of at least {k} deaths; each curve stops where fewer than {k} remain at risk.",
                       xref="paper", yref="paper", x=0, y=-0.22, showarrow=False, font={"size": 11})
    return fig


def quantile_figure(summary: pd.DataFrame, title: str, unit: str, k: int, *, ref_low=None, ref_high=None,
                    note: str | None = None) -> go.Figure:
    """Median and interquartile range per group (groups of at least k values only)."""
    fig = go.Figure()
    ok = summary[summary["median"] != MARK]
    if ref_high is not None:
        fig.add_vrect(x0=ref_low or 0, x1=ref_high, fillcolor="#48bb78", opacity=0.12, line_width=0)
    for _, r in ok.iterrows():
        fig.add_scatter(x=[r["p25"], r["p75"]], y=[r["group"], r["group"]], mode="lines", line={"color": _BLUE, "width": 8},
                        hovertemplate=f"IQR %{{x:.3g}} {unit}<extra>{r['group']}</extra>")
        fig.add_scatter(x=[r["median"]], y=[r["group"]], mode="markers", marker={"color": "#1a202c", "size": 12, "symbol": "line-ns-open"},
                        hovertemplate=f"median %{{x:.3g}} {unit}<extra>{r['group']}</extra>")
    fig.update_xaxes(title=unit)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title + " — median and interquartile range", k, note, int(len(summary) - len(ok)))
