"""/cases: find cases of the cohort, and every published fact of one case with its labs against
reference ranges."""

import pandas as pd
import streamlit as st

from dashboards.lib import auth, charts, data, labels, ui
from dashboards.lib.text import lit
from dashboards.queries import cases as q

auth.guard("cases")
sites = auth.site_scope()  # site_staff: their sites only, in every query of this page
ctx = ui.start_page("Cases", "Search the cohort, then pick a case (click its row, or type its ID) to see all of its facts.")

LIST_LIMIT = 5000
FLAG = {"high": "↑ High", "low": "↓ Low", "normal": "Normal"}


def _pick_row() -> None:
    rows = st.session_state["case_table"].selection.rows
    ids = st.session_state.get("_case_ids") or []
    if rows and rows[0] < len(ids):
        st.session_state["case"] = ids[rows[0]]


c1, c2 = st.columns([3, 2])
with c1:
    search = st.text_input("Search cases", key="q", placeholder="Case ID, site or source (e.g. LIT, DE-AAC, autopsy)",
                           bind="query-params", icon=":material/search:")
with c2:
    picked = st.text_input("Case ID", key="case", placeholder="e.g. LIT-AUTOPSY-002", bind="query-params",
                           icon=":material/badge:", help="The case shown below. Also set by clicking a row of the table.")

listing = data.run(ctx.snap, q.case_list, ctx.filter, search, LIST_LIMIT, sites)
cases = listing["cases"]
st.session_state["_case_ids"] = list(cases["case_id"])
shown = cases.copy()
for col in ("source", "sex", "kidney_status", "lesion_distribution", "vital_status", "cause_of_death"):
    shown[col] = ["" if pd.isna(v) else ctx.label(col, v) for v in shown[col]]
for col in ("is_synthetic", "diabetes", "warfarin", "visceral_involvement"):
    shown[col] = [labels.yes_no(v) for v in shown[col]]
n = listing["n_matching"]
snap, flt = ctx.snap, ctx.filter
ui.table(
    shown, "cases", key="case_table", height=320 if len(shown) > 8 else "auto", on_select=_pick_row, selection_mode="single-row",
    csv=lambda: data.uncached(snap, q.case_list, flt, search, None, sites)["cases"],
    caption=(f"{n:,} matching cases" + (f"; showing the first {LIST_LIMIT:,} (real cases first): the download has all of them" if n > LIST_LIMIT else "")),
    column_config={"index_year": st.column_config.NumberColumn("Index year", format="%d")},
)

# without a search, the default case is the listing's first row (same cohort, scope and order): no second scan
listed = listing["cases"]["case_id"]
first_listed = listed.iloc[0] if not (search or "").strip() and len(listed) else None
case_id = (picked or "").strip() or first_listed or data.run(ctx.snap, q.default_case, ctx.filter, sites)
if not case_id:
    st.info("No case matches this filter.", icon=":material/filter_alt_off:")
    st.stop()
detail = data.run(ctx.snap, q.case_detail, case_id, sites)
if detail is None:
    if sites is not None:  # not among the user's sites (or no such case: the answer does not say which)
        auth.audit("access_refused", page="/cases", case_id=case_id)
        st.warning(f"There is no case {lit(case_id)} among the cases of your sites ({', '.join(sites) or 'none'}).",
                   icon=":material/search_off:")
    else:
        st.warning(f"There is no case {lit(case_id)} in the published snapshot.", icon=":material/search_off:")
    st.stop()
auth.audit_case_view(case_id)

case = detail["case"]
st.divider()
badges = [f":gray-badge[Site {case['site_id']}]", f":gray-badge[Revision {case['revision']}]"]
if case["is_synthetic"]:
    badges.insert(0, ":orange-badge[:material/science: Synthetic case]")
else:
    badges.insert(0, f":blue-badge[{ctx.label('source', case['source'])}]")
st.subheader(f"Case {case_id}")  # a case of the snapshot: its id matched the contract's pattern
st.markdown(" ".join(badges))

dead = case["vital_status"] == "dead"
fu = case["followup_days"]
fu_text = "" if pd.isna(fu) else f" at day {int(fu):,}"
m = st.columns(4)
sex = ctx.label("sex", case["sex"]).lower()
m[0].metric("Age, " + ("sex unknown" if sex == "unknown" else sex), f"{int(case['age_years'])}{'+' if case['age_years'] >= 90 else ''} years",
            border=True)
m[1].metric("Kidney status", ctx.label("kidney_status", case["kidney_status"]), border=True)
m[2].metric("Outcome" + fu_text, "Died" if dead else ctx.label("vital_status", case["vital_status"]), border=True,
            help=None if not dead else "Cause: " + charts.cause_label(case["cause_of_death"], ctx.vocab))
m[3].metric("Organs involved" + (", visceral" if case["visceral_involvement"] else ", cutaneous only"), f"{int(case['organ_count'])}",
            border=True)

note = "Synthetic case" if case["is_synthetic"] else None
ui.chart(charts.case_timeline_figure(case, detail["treatments"], detail["labs"], ctx.vocab, note), key="timeline")
undated = [ctx.label("treatment", t) for t, d in detail["treatments"][["treatment", "day"]].itertuples(index=False) if pd.isna(d)]
if undated:
    st.caption("Treatments without a reported day: " + ", ".join(undated) + ".")
if not detail["labs"].empty:
    ui.chart(charts.case_labs_figure(detail["labs"], note), key="case_labs")

tabs = st.tabs(["All facts", f"Labs ({len(detail['labs'])})", f"Organs ({len(detail['organs'])})",
                f"Lesions ({len(detail['lesions'])})", f"Treatments ({len(detail['treatments'])})", "Revisions"])
with tabs[0]:
    facts = pd.DataFrame({
        "field": [labels.pretty(k) for k in case],
        "value": [labels.fact_text(k, v, ctx.vocab) for k, v in case.items()],
    })
    ui.table(facts, f"case_{case_id}_facts", csv=pd.DataFrame([case]), height=min(36 * len(facts) + 40, 720))
with tabs[1]:
    labs = detail["labs"]
    if labs.empty:
        st.caption("No lab values.")
    else:
        t = pd.DataFrame({
            "analyte": labs["analyte_label"].fillna(labs["analyte"]),
            "day": labs["day"],
            "value": labs["value"],
            "unit": labs["unit"],
            "reference_range": [labels.range_text(lo, hi) for lo, hi in zip(labs["ref_low"], labs["ref_high"])],
            "flag": [FLAG.get(f, "–") for f in labs["flag"]],
            "reported": [f"{labels.fmt_num(v, 4).rstrip('0').rstrip('.')} {u}" for v, u in zip(labs["value_reported"], labs["unit_reported"])],
            "range_from": ["record" if r else "default" for r in labs["ref_range_from_record"]],
        })
        ui.table(t, f"case_{case_id}_labs", csv=labs, column_config={"value": st.column_config.NumberColumn("Value", format="%.4g")})
        st.caption("Values in the analyte's canonical unit; the reported value and unit are kept beside. "
                   "Range from: the record's own reference range, or the analyte's default.")
with tabs[2]:
    o = detail["organs"].assign(organ=lambda d: [ctx.label("organ", v) for v in d["organ"]],
                                organ_group=lambda d: [ctx.label("organ_group", v) for v in d["organ_group"]],
                                evidence=lambda d: [ctx.label("evidence", v) for v in d["evidence"]])
    ui.table(o, f"case_{case_id}_organs")
with tabs[3]:
    les = detail["lesions"].assign(
        site=lambda d: [ctx.label("site", v) for v in d["site"]],
        site_group=lambda d: [ctx.label("site_group", v) for v in d["site_group"]],
        laterality=lambda d: [ctx.label("laterality", v) for v in d["laterality"]],
        features=lambda d: [", ".join(ctx.label("features", x) for x in (v if v is not None else [])) for v in d["features"]],
    )
    ui.table(les, f"case_{case_id}_lesions")
with tabs[4]:
    tr = detail["treatments"].assign(treatment=lambda d: [ctx.label("treatment", v) for v in d["treatment"]])
    ui.table(tr, f"case_{case_id}_treatments", column_config={"day": st.column_config.NumberColumn("Day", format="%d")})
with tabs[5]:
    rev = detail["revisions"].assign(source=lambda d: [ctx.label("source", v) for v in d["source"]],
                                     is_current=lambda d: [labels.yes_no(v) for v in d["is_current"]])
    ui.table(rev, f"case_{case_id}_revisions")
