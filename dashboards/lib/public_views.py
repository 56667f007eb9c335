"""The aggregate pages in disclosure mode (public dashboard, signed-in viewers): the same queries as
the exact pages, every figure through :mod:`dashboards.lib.public` before it reaches the screen or a
CSV. Each page file calls its function here when ``ctx.k`` is set and stops."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards.lib import charts, data, labels, public, ui
from dashboards.queries import common as common_q
from dashboards.queries import labs as labs_q
from dashboards.queries import mortality as mortality_q
from dashboards.queries import organs as organs_q
from dashboards.queries import overview as overview_q

MARK = public.MARK


def _n(v: Any) -> str:
    return v if isinstance(v, str) else f"{int(v):,}"


def _pct(v: Any) -> str:
    return MARK if v == MARK else labels.fmt_pct(v)


def _num(v: Any) -> str:
    return MARK if isinstance(v, str) or v is None else f"{float(v):.3g}"


def _ci(est: Any, lo: Any, hi: Any) -> str:
    return MARK if est == MARK or est is None else labels.fmt_ci(est, lo, hi)


def _strings(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text (so that a suppressed cell and a number share a column)."""
    return df.astype(object).where(df.notna(), "–").astype(str)


def _note(ctx: ui.PageContext) -> str | None:
    return "includes synthetic cases" if ctx.size.get("n_synthetic") else None


# ----------------------------------------------------------------------------- /


def overview(ctx: ui.PageContext) -> None:
    k = ctx.k
    res = data.run(ctx.snap, overview_q.public_overview_queries, ctx.filter)
    p = public.protect_overview(res, res["curve"], k)
    s = p["summary"]
    c = st.columns(4)
    c[0].metric("Cases", _n(s["n_cases"]), border=True)
    c[1].metric("Sites", _n(s["n_sites"]), border=True)
    c[2].metric("Median age (IQR)", f"{labels.fmt_num(s['age_median'])} ({labels.fmt_num(s['age_p25'])}–{labels.fmt_num(s['age_p75'])})",
                border=True, help="Years at day 0; ages of 90 or more are published as 90.")
    c[3].metric("Female", _pct(s["pct_female"]), border=True)
    c = st.columns(4)
    c[0].metric("Deaths", _n(s["n_deaths"]), border=True)
    c[1].metric("Case fatality", _pct(s["case_fatality"]), border=True, help="Deaths / cases with a known outcome.")
    c[2].metric("1-year survival", MARK if s["survival_365d"] is None else labels.fmt_pct(s["survival_365d"]), border=True,
                help=f"Kaplan–Meier estimate at day 365 on the coarsened curve (steps of at least {k} deaths).")
    if s["survival_365d"] is not None:
        c[2].caption(f"95% CI {labels.fmt_pct(s['ci_lower_365d'])} – {labels.fmt_pct(s['ci_upper_365d'])}")
    med = {"reached": f"{s['median_survival_days']:,} days" if s["median_survival_days"] is not None else MARK,
           "not reached": "not reached"}.get(s["median_status"], MARK)
    c[3].metric("Median survival", med, border=True)

    kid = p["kidney_status"].assign(kidney_status=lambda d: [ctx.label("kidney_status", v) for v in d["kidney_status"]])
    left, right = st.columns(2)
    with left:
        ui.chart(public.bar_figure(kid, "kidney_status", "n", "Kidney status", k, note=_note(ctx)), key="kidney")
    with right:
        yr = p["by_year"].assign(index_year=lambda d: ["unknown" if pd.isna(v) else str(int(v)) for v in d["index_year"]])
        ui.chart(public.bar_figure(yr, "index_year", "n", "Cases by index year", k, note=_note(ctx)), key="years")
    ui.chart(public.bar_figure(p["by_site"], "site_id", "n", "Cases by site", k, note=_note(ctx)), key="sites")

    with st.expander("Tables", icon=":material/table:", expanded=True):
        t1, t2, t3, t4 = st.tabs(["Summary", "Kidney status", "Index year", "Site"])
        with t1:
            rows = [("Cases", _n(s["n_cases"])), ("Synthetic cases", _n(s["n_synthetic"])), ("Sites", _n(s["n_sites"])),
                    ("Median age, years (IQR)", f"{labels.fmt_num(s['age_median'])} ({labels.fmt_num(s['age_p25'])}–{labels.fmt_num(s['age_p75'])})"),
                    ("Female", _pct(s["pct_female"])), ("Known outcome", _n(s["n_known_outcome"])), ("Deaths", _n(s["n_deaths"])),
                    ("Case fatality", _pct(s["case_fatality"])),
                    ("1-year survival (95% CI)", _ci(s["survival_365d"], s["ci_lower_365d"], s["ci_upper_365d"])), ("Median survival", med)]
            ui.table(pd.DataFrame(rows, columns=["Measure", "Value"]), "overview_summary")
        with t2:
            ui.table(_strings(kid.assign(n=[_n(v) for v in kid["n"]], pct=[_pct(v) for v in kid["pct"]])
                              .rename(columns={"n": "Cases", "pct": "% of cases"})), "kidney_status")
        with t3:
            ui.table(_strings(yr.assign(n=[_n(v) for v in yr["n"]]).rename(columns={"index_year": "Index year", "n": "Cases"})),
                     "cases_by_index_year")
        with t4:
            ui.table(_strings(p["by_site"].assign(n=[_n(v) for v in p["by_site"]["n"]]).rename(columns={"n": "Cases"})), "cases_by_site")


# ----------------------------------------------------------------------------- /mortality


def mortality(ctx: ui.PageContext) -> None:
    k = ctx.k
    c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
    with c1:
        stratum = ui.stratum_picker("Stratify by", "km_by", default=mortality_q.DEFAULT_MORTALITY_STRATUM)
    with c2:
        bands = st.toggle("95% confidence bands", value=True, key="bands")
    res = data.run(ctx.snap, mortality_q.mortality_queries, ctx.filter, stratum)
    p = public.protect_mortality(res, k, cohort=ctx.size, at_risk_days=common_q.AT_RISK_DAYS, survival_days=common_q.SURVIVAL_DAYS)
    with c3:
        lp = p["logrank_p"]
        if lp is None:
            st.caption(f"Log-rank test: shown only for two groups or more, each of at least {k} cases.")
        else:
            st.markdown(f"**Log-rank test**: p {'< 0.001' if lp < 0.001 else '= ' + format(lp, '.3f')}")
    group_label = labels.STRATA[stratum] if stratum else "Group"
    title = "Kaplan–Meier survival" + (f" by {labels.STRATA[stratum].lower()}" if stratum else "")
    ui.chart(public.km_figure(p["curves"], p["groups"], title, k, note=_note(ctx), bands=bands), key="km")
    if p["n_groups_hidden"]:
        st.caption(f"{p['n_groups_hidden']} group(s) with fewer than {k} cases (or whose size could reveal one) are not drawn.")

    st.markdown("**Number at risk**")
    ui.table(_strings(p["at_risk"].rename(columns={"group": group_label})), "number_at_risk", key="at_risk",
             caption=f"Cases still followed at the start of each day, rounded down to a multiple of {k}; fewer than {k}: suppressed.")

    st.subheader("Survival at 30, 90, 180 and 365 days")
    t = p["table"]
    show = pd.DataFrame({
        group_label: t["group"],
        "Cases": [_n(v) for v in t["n_cases"]],
        "Known outcome": [_n(v) for v in t["n_known_outcome"]],
        "Deaths": [_n(v) for v in t["n_deaths"]],
        "Case fatality": [_pct(v) for v in t["case_fatality"]],
        **{f"{d} d (95% CI)": [_ci(a, b, c) for a, b, c in zip(t[f"survival_{d}d"], t[f"ci_lower_{d}d"], t[f"ci_upper_{d}d"])]
           for d in common_q.SURVIVAL_DAYS},
        "Median (days)": [v if isinstance(v, str) else f"{int(v):,}" for v in t["median_survival_days"]],
    })
    ui.table(show, "survival_by_group", key="survival",
             caption=f"Read off the coarsened Kaplan–Meier curve (steps of at least {k} deaths, stopping where fewer than {k} are at risk).")

    st.subheader("Causes of death")
    causes = p["causes"].assign(cause_of_death=lambda d: [charts.cause_label(v, ctx.vocab) for v in d["cause_of_death"]])
    left, right = st.columns([3, 2])
    with left:
        ui.chart(public.bar_figure(causes, "cause_of_death", "n", "Causes of death", k, note=_note(ctx), horizontal=True), key="causes")
    with right:
        ui.table(_strings(causes.assign(n=[_n(v) for v in causes["n"]], pct_of_deaths=[_pct(v) for v in causes["pct_of_deaths"]])
                          .rename(columns={"n": "Deaths", "pct_of_deaths": "% of deaths"})), "causes_of_death", key="causes_t")


# ----------------------------------------------------------------------------- /organs


def organs(ctx: ui.PageContext) -> None:
    k = ctx.k
    c1, _ = st.columns([2, 3])
    with c1:
        stratum = ui.stratum_picker("Compare cutaneous-only and visceral disease by", "organs_by",
                                    default=organs_q.DEFAULT_ORGAN_STRATUM, allow_none=True)
    res = data.run(ctx.snap, organs_q.organ_queries, ctx.filter, stratum)
    p = public.protect_organs(res, k)
    freq = p["frequency"].assign(organ=lambda d: [ctx.label("organ", v) for v in d["organ"]],
                                 organ_group=lambda d: [ctx.label("organ_group", v) for v in d["organ_group"]])
    group_label = labels.STRATA.get(stratum, "Group") if stratum else "Group"
    by = p["by_stratum"]
    left, right = st.columns(2)
    with left:
        ui.chart(public.bar_figure(freq, "organ", "n", "Organs involved (cases)", k, note=_note(ctx), horizontal=True), key="freq")
    with right:
        ui.chart(public.bar_figure(by, "group", "n_visceral", f"Visceral disease by {group_label.lower()} (cases)", k, note=_note(ctx)),
                 key="visceral")
    t1, t2, t3 = st.tabs(["Organ frequency", "Cutaneous only versus visceral", "Co-occurring pairs"])
    with t1:
        ui.table(_strings(freq.drop(columns=["sort_order"]).assign(n=[_n(v) for v in freq["n"]],
                                                                  pct_of_cases=[_pct(v) for v in freq["pct_of_cases"]])
                          .rename(columns={"n": "Cases", "pct_of_cases": "% of cases"})), "organ_frequency")
    with t2:
        ui.table(_strings(by.assign(**{c: [_n(v) for v in by[c]] for c in ("n_cases", "n_cutaneous_only", "n_visceral")},
                                    pct_cutaneous_only=[_pct(v) for v in by["pct_cutaneous_only"]],
                                    pct_visceral=[_pct(v) for v in by["pct_visceral"]])
                          .rename(columns={"group": group_label, "pct_cutaneous_only": "Cutaneous only (%)", "pct_visceral": "Visceral (%)"})),
                 "cutaneous_vs_visceral")
    with t3:
        co = p["cooccurrence"].assign(organ_a=lambda d: [ctx.label("organ", v) for v in d["organ_a"]],
                                      organ_b=lambda d: [ctx.label("organ", v) for v in d["organ_b"]])
        co = co.assign(_o=[-1 if v == MARK else v for v in co["n"]]).sort_values("_o", ascending=False).drop(columns="_o")
        ui.table(_strings(co.assign(n=[_n(v) for v in co["n"]]).rename(columns={"organ_a": "Organ", "organ_b": "With organ",
                                                                             "n": "Cases with both"})), "organ_cooccurrence")


# ----------------------------------------------------------------------------- /labs


def _summary_display(t: pd.DataFrame, unit: str, group_label: str, *, low: bool = True, high_label: str = "Above range (%)") -> pd.DataFrame:
    out = pd.DataFrame({
        group_label: t["group"],
        "n": [_n(v) for v in t["n"]],
        f"Median ({unit})": [_num(v) for v in t["median"]],
        f"IQR ({unit})": [MARK if isinstance(a, str) else f"{a:.3g}–{b:.3g}" for a, b in zip(t["p25"], t["p75"])],
        f"Mean ({unit})": [_num(v) for v in t["mean"]],
        f"SD ({unit})": [_num(v) for v in t["sd"]],
    })
    if low:
        out["Below range (%)"] = [MARK if isinstance(v, str) or v is None else labels.fmt_num(v, 1) for v in t["pct_low"]]
    out[high_label] = [MARK if isinstance(v, str) or v is None else labels.fmt_num(v, 1) for v in t["pct_high"]]
    return out


def labs(ctx: ui.PageContext) -> None:
    k = ctx.k
    opts = data.run(ctx.snap, labs_q.lab_options)
    with_data = opts[opts["n_cases"] >= k]
    choices = list(with_data["analyte"])
    if not choices:
        st.info(f"No analyte has values from at least {k} cases.", icon=":material/policy:")
        return
    label_of = dict(zip(opts["analyte"], opts["label"]))
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
    with c1:
        analyte = st.selectbox("Analyte", choices, index=choices.index("calcium") if "calcium" in choices else 0, key="analyte",
                               format_func=lambda a: label_of.get(a, a), bind="query-params")
    with c2:
        units = st.segmented_control("Units", ["canonical", "si"], default="canonical", key="units", required=True,
                                     format_func=lambda u: "Canonical" if u == "canonical" else "SI", bind="query-params")
    with c3:
        values = st.segmented_control("Values", ["baseline", "all"], default="baseline", key="values", required=True,
                                      format_func=lambda v: "Baseline" if v == "baseline" else "All", bind="query-params")
    with c4:
        stratum = ui.stratum_picker("Compare by", "labs_by", default="none")
    si = units == "si"
    res = data.run(ctx.snap, labs_q.lab_queries, ctx.filter, analyte, si=si, baseline_only=values != "all", stratum=stratum)
    info = res["info"]
    group_label = labels.STRATA[stratum] if stratum else "Group"
    summary = public.protect_lab_summary(res["summary"], k, cohort_n=ctx.n if values != "all" else None)
    title = f"{info['label']} ({info['unit']})" + (f" by {labels.STRATA[stratum].lower()}" if stratum else "")
    ui.chart(public.quantile_figure(summary, title, info["unit"], k, ref_low=info["ref_low"], ref_high=info["ref_high"],
                                    note=_note(ctx)), key="hist")
    st.caption(f"Under the disclosure policy no histogram, minimum, maximum or single value is shown: quartiles only for groups of at "
               f"least {k} values. Shaded: the analyte's default reference range.")
    st.subheader("Summary")
    ui.table(_summary_display(summary, info["unit"], group_label), f"lab_summary_{analyte}_{'si' if si else 'canonical'}", key="lab_summary")

    st.divider()
    st.subheader("Calcium × phosphate product")
    capp = data.run(ctx.snap, labs_q.capp_queries, ctx.filter, si=si)
    thr = capp["threshold"]
    cs = public.protect_lab_summary(capp["summary"], k, low=False, cohort_n=ctx.n)
    ui.chart(public.quantile_figure(cs, f"Calcium × phosphate product ({capp['unit']})", capp["unit"], k, note=_note(ctx)), key="capp")
    st.caption(f"Baseline calcium × baseline phosphate. Threshold {thr:.3g} {capp['unit']} (KDOQI 2003); *above* is the share above it.")
    ui.table(_summary_display(cs, capp["unit"], "Group", low=False, high_label=f"Above {thr:.3g} (%)"),
             f"calcium_phosphate_product_{'si' if si else 'canonical'}", key="capp_summary")
