"""/organs: which organs show calcific vasculopathy, which occur together, and how often disease is
visceral rather than cutaneous only."""

import streamlit as st

from dashboards.lib import charts, data, labels, public_views, ui
from dashboards.queries import organs as q

ctx = ui.start_page("Organs", "Organs with calcific vasculopathy. Cutaneous: skin, subcutaneous fat, skeletal muscle; "
                    "visceral: every other organ.")
if ui.empty_cohort(ctx):
    st.stop()
if ctx.k:  # disclosure mode (public dashboard, viewers): every figure under the policy
    public_views.organs(ctx)
    st.stop()

c1, _ = st.columns([2, 3])
with c1:
    stratum = ui.stratum_picker("Compare cutaneous-only and visceral disease by", "organs_by",
                                default=q.DEFAULT_ORGAN_STRATUM, allow_none=True)
res = data.run(ctx.snap, q.organ_queries, ctx.filter, stratum)
freq = res["frequency"]

left, right = st.columns(2)
with left:
    ui.chart(charts.organ_frequency_figure(freq, ctx.vocab, ctx.note), key="freq")
with right:
    ui.chart(charts.visceral_by_stratum_figure(res["by_stratum"], labels.STRATA.get(stratum, "cohort") if stratum else "cohort",
                                               ctx.note), key="visceral")
ui.chart(charts.cooccurrence_figure(freq, res["cooccurrence"], ctx.vocab, ctx.note), key="cooc")
st.caption("Cells: cases in which both organs are involved; the diagonal gives each organ's own number of cases.")

t1, t2, t3 = st.tabs(["Organ frequency", "Cutaneous only versus visceral", "Co-occurring pairs"])
with t1:
    f = freq.drop(columns=["sort_order"]).assign(
        organ=lambda d: [ctx.label("organ", v) for v in d["organ"]],
        organ_group=lambda d: [ctx.label("organ_group", v) for v in d["organ_group"]],
        pct_of_cases=lambda d: d["pct_of_cases"] * 100,
    )
    ui.table(f.rename(columns={"n": "Cases"}), "organ_frequency", column_config={"pct_of_cases": ui.pct_column("% of cases")})
with t2:
    b = res["by_stratum"].assign(pct_cutaneous_only=lambda d: d["pct_cutaneous_only"] * 100, pct_visceral=lambda d: d["pct_visceral"] * 100)
    ui.table(b.rename(columns={"group": labels.STRATA.get(stratum, "Group") if stratum else "Group"}), "cutaneous_vs_visceral", column_config={"pct_cutaneous_only": ui.pct_column("Cutaneous only (%)"),
                                                       "pct_visceral": ui.pct_column("Visceral (%)")})
with t3:
    co = res["cooccurrence"].assign(organ_a=lambda d: [ctx.label("organ", v) for v in d["organ_a"]],
                                    organ_b=lambda d: [ctx.label("organ", v) for v in d["organ_b"]])
    ui.table(co.sort_values("n", ascending=False).rename(columns={"organ_a": "Organ", "organ_b": "With organ", "n": "Cases with both"}),
             "organ_cooccurrence")
