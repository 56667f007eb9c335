"""/mortality: Kaplan–Meier survival by a stratum of the analyst's choice, survival at fixed days,
log-rank test and causes of death."""

import pandas as pd
import streamlit as st

from dashboards.lib import charts, data, labels, public_views, ui
from dashboards.queries import mortality as q

ctx = ui.start_page("Mortality", "Survival from day 0 (first presentation). Cases with unknown vital status are left out; "
                    "the others are followed until death or last contact (censored).")
if ui.empty_cohort(ctx):
    st.stop()
if ctx.k:  # disclosure mode (public dashboard, viewers): every figure under the policy
    public_views.mortality(ctx)
    st.stop()

c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
with c1:
    stratum = ui.stratum_picker("Stratify by", "km_by", default=q.DEFAULT_MORTALITY_STRATUM)
with c2:
    bands = st.toggle("95% confidence bands", value=True, key="bands")
res = data.run(ctx.snap, q.mortality_queries, ctx.filter, stratum)
p = res["logrank_p"]
with c3:
    k = int((res["by_group"]["n_known_outcome"] > 0).sum())
    if p is None:
        st.caption("Log-rank test: pick a stratum with two groups or more.")
    else:
        st.markdown(f"**Log-rank test** ({k} groups): "
                    f"p {'< 0.001' if p < 0.001 else '= ' + format(p, '.3f')}")

by = res["by_group"]
curves = res["curves"]
title = "Kaplan–Meier survival" + (f" by {labels.STRATA[stratum].lower()}" if stratum else "")
group_label = labels.STRATA[stratum] if stratum else "Group"
ui.chart(charts.km_figure(curves, res["groups"], note=ctx.note, title=title, bands=bands,
                          legend_title=group_label if stratum else None), key="km")

st.markdown("**Number at risk**")
ui.table(res["at_risk"].rename(columns={"group": group_label}), "number_at_risk", key="at_risk",
         caption="Cases with a known outcome still followed at the start of each day.")

st.subheader("Survival at 30, 90, 180 and 365 days")
show = pd.DataFrame({
    group_label: by["group"],
    "n_cases": by["n_cases"],
    "n_known_outcome": by["n_known_outcome"],
    "n_deaths": by["n_deaths"],
    "Case fatality": [labels.fmt_pct(v) for v in by["case_fatality"]],
    **{f"{d} d (95% CI)": [labels.fmt_ci(a, b, c) for a, b, c in zip(by[f"survival_{d}d"], by[f"ci_lower_{d}d"], by[f"ci_upper_{d}d"])]
       for d in q.SURVIVAL_DAYS},
    "Median (days)": ["not reached" if pd.isna(m) else f"{int(m):,}" for m in by["median_survival_days"]],
})
ui.table(show, "survival_by_group", csv=by, key="survival",
         caption="Kaplan–Meier estimates with pointwise 95% confidence intervals (log(−log) Greenwood), computed as in mart_mortality.")

st.subheader("Causes of death")
left, right = st.columns([3, 2])
with left:
    ui.chart(charts.causes_figure(res["causes"], ctx.vocab, ctx.note), key="causes")
with right:
    causes = res["causes"].assign(cause_of_death=lambda d: [charts.cause_label(v, ctx.vocab) for v in d["cause_of_death"]],
                                  pct_of_deaths=lambda d: d["pct_of_deaths"] * 100)
    ui.table(causes, "causes_of_death", key="causes_t", column_config={"pct_of_deaths": ui.pct_column("% of deaths")})
