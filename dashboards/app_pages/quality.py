"""/quality: quarantined records with every reason, completeness of each field, submissions over time.
Registry-wide (the cohort filter does not apply)."""

import streamlit as st

from dashboards.lib import charts, data, ui
from dashboards.queries import quality as q

ctx = ui.start_page("Data quality", "The whole registry (not filtered): what was rejected and why, what is known, what arrived when.",
                    filtered=False)
res = data.run(ctx.snap, q.quality_queries)
q = res["quarantine"]
subs = res["submissions"]

m = st.columns(4)
m[0].metric("Records accepted", f"{int(subs['n_accepted'].sum()):,}", border=True, help="Record versions accepted, all days.")
m[1].metric("Records quarantined", f"{len(q):,}", border=True)
m[2].metric("Open", f"{int((~q['is_resolved'].fillna(False).astype(bool)).sum()):,}", border=True,
            help="Quarantined records not yet resolved by an accepted correction.")
m[3].metric("Cases published", f"{ctx.size['n_registry']:,}", border=True)

left, right = st.columns(2)
with left:
    ui.chart(charts.completeness_figure(res["completeness"]), key="completeness")
with right:
    ui.chart(charts.submissions_figure(subs), key="submissions")

st.subheader("Quarantined records")
if q.empty:
    st.success("Nothing has been quarantined.", icon=":material/verified:")
else:
    show_resolved = st.toggle("Show resolved entries too", value=True, key="resolved")
    qq = q if show_resolved else q[~q["is_resolved"].fillna(False).astype(bool)]
    ui.table(qq.assign(is_resolved=lambda d: ["Yes" if v else "No" for v in d["is_resolved"]]), "quarantine", key="quarantine",
             column_config={"reasons": st.column_config.TextColumn("Reasons", width="large")},
             caption="Every broken rule of each record, as `path: message` separated by ` | `. Payloads are never shown.")

st.subheader("Completeness")
comp = res["completeness"].assign(pct_known=lambda d: d["pct_known"] * 100)
ui.table(comp, "completeness", key="completeness_t", column_config={"pct_known": ui.pct_column("Known (%)")},
         caption="Known: not null and not coded 'unknown', among the cases the field applies to.")

st.subheader("Submissions per day")
ui.table(subs, "submissions_per_day", key="subs_t", column_config={"day": st.column_config.DateColumn("Day (UTC)", format="YYYY-MM-DD")})
