"""/ : the cohort at a glance."""

import pandas as pd
import streamlit as st

from dashboards.lib import charts, data, labels, public_views, ui
from dashboards.queries import overview as q

ctx = ui.start_page("Calciphylaxis Registry", "Cases of calciphylaxis (calcific uraemic arteriolopathy) in the published snapshot.")
if ui.empty_cohort(ctx):
    st.stop()
if ctx.k:  # disclosure mode (public dashboard, viewers): every figure under the policy
    public_views.overview(ctx)
    st.stop()
res = data.run(ctx.snap, q.overview_queries, ctx.filter)
s = res["summary"].iloc[0].to_dict()

c = st.columns(4)
c[0].metric("Cases", f"{int(s['n_cases']):,}", border=True)
c[1].metric("Sites", f"{int(s['n_sites']):,}", border=True)
c[2].metric("Median age (IQR)", f"{labels.fmt_num(s['age_median'])} ({labels.fmt_num(s['age_p25'])}–{labels.fmt_num(s['age_p75'])})",
            border=True, help="Years at day 0; ages of 90 or more are published as 90.")
c[3].metric("Female", labels.fmt_pct(s["pct_female"]), border=True)
c = st.columns(4)
c[0].metric("Deaths", f"{int(s['n_deaths']):,}", border=True,
            help=f"Known outcome for {int(s['n_known_outcome']):,} cases; unknown vital status is left out of mortality figures.")
c[1].metric("Case fatality", labels.fmt_pct(s["case_fatality"]), border=True, help="Deaths / cases with a known outcome.")
c[2].metric("1-year survival", labels.fmt_pct(s["survival_365d"]), border=True,
            help="Kaplan–Meier estimate at day 365 with its 95% confidence interval (log(−log) Greenwood).")
c[2].caption(f"95% CI {labels.fmt_pct(s['ci_lower_365d'])} – {labels.fmt_pct(s['ci_upper_365d'])}")
med = s["median_survival_days"]
c[3].metric("Median survival", "not reached" if pd.isna(med) else f"{int(med):,} days", border=True)

left, right = st.columns(2)
with left:
    ui.chart(charts.kidney_figure(res["kidney_status"], ctx.vocab, ctx.note), key="kidney")
with right:
    ui.chart(charts.by_year_figure(res["by_year"], ctx.note), key="years")
ui.chart(charts.by_site_figure(res["by_site"], ctx.note), key="sites")

with st.expander("Tables", icon=":material/table:"):
    t1, t2, t3, t4 = st.tabs(["Summary", "Kidney status", "Index year", "Site"])
    with t1:
        rows = [
            ("Cases", f"{int(s['n_cases']):,}"), ("Synthetic cases", f"{int(s['n_synthetic']):,}"), ("Sites", f"{int(s['n_sites']):,}"),
            ("Median age, years (IQR)", f"{labels.fmt_num(s['age_median'])} ({labels.fmt_num(s['age_p25'])}–{labels.fmt_num(s['age_p75'])})"),
            ("Female", labels.fmt_pct(s["pct_female"])), ("Known outcome", f"{int(s['n_known_outcome']):,}"),
            ("Deaths", f"{int(s['n_deaths']):,}"), ("Case fatality", labels.fmt_pct(s["case_fatality"])),
            ("1-year survival (95% CI)", labels.fmt_ci(s["survival_365d"], s["ci_lower_365d"], s["ci_upper_365d"])),
        ]
        ui.table(pd.DataFrame(rows, columns=["Measure", "Value"]), "overview_summary", csv=res["summary"])
    with t2:
        k = res["kidney_status"].assign(kidney_status=lambda d: [ctx.label("kidney_status", v) for v in d["kidney_status"]],
                                        pct=lambda d: d["pct"] * 100)
        ui.table(k, "kidney_status", column_config={"pct": ui.pct_column("% of cases")})
    with t3:
        y = res["by_year"].pivot_table(index="index_year", columns="is_synthetic", values="n", aggfunc="sum", fill_value=0, dropna=False)
        y = y.rename(columns={False: "Real", True: "Synthetic"}).reset_index()
        ui.table(y, "cases_by_index_year", column_config={"index_year": st.column_config.NumberColumn("Index year", format="%d")})
    with t4:
        st_ = res["by_site"].pivot_table(index="site_id", columns="is_synthetic", values="n", aggfunc="sum", fill_value=0)
        ui.table(st_.rename(columns={False: "Real", True: "Synthetic"}).reset_index(), "cases_by_site")
