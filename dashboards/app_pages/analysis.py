"""/analysis: the analyses registry papers publish, on the filtered cohort: Table 1 by a grouping,
a Cox model of death with its forest plot and proportional-hazards check, the cumulative incidence
of death by cause (competing risks) and wound healing. Same code as ``registry analysis`` and
``registry report``."""

import io

import pandas as pd
import streamlit as st

from dashboards.lib import charts, data, labels, ui
from dashboards.queries import analysis as q
from orchestration.analytics import names as V
from orchestration.analytics import wounds
from orchestration.services import report

ctx = ui.start_page("Analysis", "Table 1, risk factors for death (Cox), competing causes of death and wound healing of the "
                    "cohort in the sidebar. The same figures come from `registry analysis` and `registry report`.")
if ui.empty_cohort(ctx):
    st.stop()


def _svg(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


t_table1, t_cox, t_cif, t_wounds = st.tabs(["Table 1", "Risk factors (Cox)", "Competing risks", "Wound healing"])

# ----------------------------------------------------------------------------- Table 1
with t_table1:
    by = st.selectbox("Group by", V.GROUPINGS, index=V.GROUPINGS.index(q.DEFAULT_TABLE1_BY), key="t1_by",
                      format_func=lambda c: labels.COLUMN_LABELS.get(c, labels.pretty(c)), bind="query-params")
    with st.spinner("Computing Table 1…"):
        res = data.run(ctx.snap, q.table1_queries, ctx.filter, by)
    header, rows = report.table1_display(res["table"], ctx.vocab)
    shown = pd.DataFrame(rows, columns=header)
    ui.table(shown, f"table1_by_{by}", csv=res["rows"], key="table1", height=min(900, 36 * (len(shown) + 1)),
             caption="Counts (% of the group); 'Unknown' is its own row, never counted as 'No'. Median (IQR) for continuous "
                     "facts. Tests compare the known groups on known values (Kruskal–Wallis; chi-squared, or Fisher's exact "
                     "for a sparse 2×2 table). SMD: absolute standardised mean difference of two known groups (the largest "
                     "pair when there are more; every pair: `registry analysis table1 --format json`).")

# ----------------------------------------------------------------------------- Cox
with t_cox:
    covs = st.multiselect("Covariates (baseline facts)", V.COX_COVARIATES, default=list(q.DEFAULT_COX_COVARIATES),
                          key="cox_covs", format_func=lambda c: labels.COLUMN_LABELS.get(c, labels.pretty(c)))
    if not covs:
        st.info("Pick at least one covariate.", icon=":material/tune:")
    else:
        with st.spinner("Fitting the Cox model…"):
            res = data.run(ctx.snap, q.cox_queries, ctx.filter, tuple(covs))
        m = res["model"]
        if m is None:
            st.warning(f"The model cannot be fitted on this cohort: {res['error']}", icon=":material/block:")
        else:
            c1, c2, c3 = st.columns(3)
            c1.metric("Cases used", f"{m['n_used']:,}", border=True)
            c2.metric("Left out (unknown values)", f"{m['n_excluded']:,}", border=True,
                      help=f"{m['excluded']['unknown_outcome']:,} with an unknown outcome or follow-up, "
                           f"{m['excluded']['unknown_covariates']:,} with an unknown covariate (complete-case analysis).")
            c3.metric("Deaths", f"{m['n_events']:,}", border=True)
            if m["ph_warning"]:
                st.warning(m["ph_warning"], icon=":material/warning:")
            ui.chart(charts.forest_figure(m, ctx.vocab, ctx.note, title="Cox model of death: hazard ratios (95% CI)"), key="forest")
            st.download_button("Download forest plot (SVG)", data=lambda: _svg(report.forest_figure(m, ctx.vocab)),
                               file_name="cox_forest.svg", mime="image/svg+xml", on_click="ignore", type="tertiary",
                               icon=":material/download:", key="dl-forest-svg")
            table = pd.DataFrame([{
                "Term": charts.forest_label(r, ctx.vocab), "HR": r["hazard_ratio"], "CI lower": r["ci_lower"],
                "CI upper": r["ci_upper"], "p": r["p"], "PH test p": ph["p"]} for r, ph in zip(m["covariates"], m["ph_test"])])
            ui.table(table, "cox_model", csv=pd.DataFrame(m["covariates"]), key="cox_t",
                     column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in ("HR", "CI lower", "CI upper")}
                     | {c: st.column_config.NumberColumn(c, format="%.4f") for c in ("p", "PH test p")},
                     caption="lifelines CoxPHFitter, Efron ties, Wald 95% CIs. A categorical covariate has one row per level "
                             "against its reference (the most common level). PH test: Schoenfeld residuals against the rank "
                             "of time.")

# ----------------------------------------------------------------------------- competing risks
with t_cif:
    with st.spinner("Computing the cumulative incidence…"):
        res = data.run(ctx.snap, q.cif_queries, ctx.filter)
    ui.chart(charts.cif_stacked_figure(res["curves"], ctx.vocab, ctx.note), key="cif")
    if len(res["curves"]):
        st.download_button("Download plot (SVG)", data=lambda: _svg(report.cif_figure(res["curves"], ctx.vocab)),
                           file_name="cumulative_incidence.svg", mime="image/svg+xml", on_click="ignore", type="tertiary",
                           icon=":material/download:", key="dl-cif-svg")
    at = res["at"]
    shown = pd.DataFrame({
        "Cause": [labels.value_label("cause_of_death", c, ctx.vocab) for c in at["cause"]],
        "Day": at["day"],
        "Cumulative incidence (95% CI)": [labels.fmt_ci(a, b, c) for a, b, c in zip(at["cumulative_incidence"], at["ci_lower"], at["ci_upper"])],
    })
    ui.table(shown, "cumulative_incidence", csv=at, key="cif_t",
             caption="Aalen–Johansen estimator; deaths of one day are handled together (no jitter); a death without a cause "
                     "counts as Unknown. 95% CI: delta-method variance (Marubini & Valsecchi), log(−log) scale. A "
                     "Kaplan–Meier '1 − survival' for one cause would overstate it.")

# ----------------------------------------------------------------------------- wounds
with t_wounds:
    st.info(wounds.TREATMENT_CAUTION, icon=":material/info:")
    with st.spinner("Counting…"):
        res = data.run(ctx.snap, q.wound_queries, ctx.filter)

    def _show(df: pd.DataFrame, first: str, column: str | None) -> pd.DataFrame:
        out = pd.DataFrame({first: ["All" if g == wounds.ALL else g if g == wounds.NO_TREATMENT else labels.value_label(column, g, ctx.vocab)
                                    for g in df["group"]], "n": df["n"]})
        for lv in wounds.HEALING_LEVELS:
            out[labels.value_label("wound_healing", lv, ctx.vocab)] = [f"{n:,} ({labels.fmt_pct(p / 100 if p is not None else None)})"
                                                                      for n, p in zip(df[f"n_{lv}"], df[f"pct_{lv}"])]
        out["Complete of assessed"] = [labels.fmt_pct(p / 100 if p is not None else None) for p in df["pct_complete_of_assessed"]]
        return out

    st.subheader("By lesion distribution")
    ui.table(_show(res["by_lesions"], "Lesions", "lesion_distribution"), "wound_healing_by_lesions", csv=res["by_lesions"],
             key="wl", caption="Healing at last contact; 'complete of assessed' leaves out not applicable and unknown.")
    st.subheader("By treatment received")
    ui.table(_show(res["by_treatment"], "Treatment", "treatment"), "wound_healing_by_treatment", csv=res["by_treatment"],
             key="wt", caption="A case counts once under every treatment it received. " + wounds.TREATMENT_CAUTION)
