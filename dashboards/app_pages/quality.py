"""/quality: quarantined records with every reason, completeness of each field, submissions over time.
Registry-wide (the cohort filter does not apply)."""

import pandas as pd
import streamlit as st

from dashboards.lib import auth, charts, data, ui
from dashboards.queries import quality as q

USER = auth.guard("quality")
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

if USER.is_coordinator:  # who read what: coordinators only
    st.subheader("Recent accesses")
    recent = auth.recent_accesses(200)
    if not recent:
        st.caption("No sign-in, refused access, case view, SQL query, download or grant change yet.")
    else:
        keep = ("page", "case_id", "query", "rows", "seconds", "what", "subject", "role", "sites", "refused")
        ui.table(pd.DataFrame({
            "at": [e.get("at", "")[:19].replace("T", " ") for e in recent],
            "user": [e.get("user") for e in recent],
            "event": [e.get("event") for e in recent],
            "details": [" · ".join(f"{k}={e[k]}" for k in keep if e.get(k) is not None) for e in recent],
        }), "recent_accesses", key="recent_accesses", column_config={"details": st.column_config.TextColumn("Details", width="large")},
            caption=f"The newest {len(recent):,} access events of the audit log (UTC); `registry audit --user EMAIL` has them all.")
    st.subheader("Access list")
    grants = auth.access_list()
    if not grants:
        st.caption("No grants: " + ("single-user mode (no config/auth.toml)." if USER.local else "grant roles with `registry access grant`."))
    else:
        ui.table(pd.DataFrame({"email": [g["email"] for g in grants], "roles": [", ".join(g["roles"]) for g in grants],
                               "sites": [", ".join(g["sites"]) for g in grants]}), "access_list", key="access_list",
                 caption="Change with `registry access grant|revoke` on the server; it applies on each user's next page load.")
