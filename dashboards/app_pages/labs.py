"""/labs: the distribution of one analyte in the cohort against its reference range, and the
calcium × phosphate product."""

import pandas as pd
import streamlit as st

from dashboards.lib import charts, data, labels, public_views, ui
from dashboards.queries import labs as q

ctx = ui.start_page("Labs", "Laboratory values converted to each analyte's canonical unit at ingestion. By default one value per "
                    "case: its baseline (earliest) value, as in mart_lab_distributions.")
if ui.empty_cohort(ctx):
    st.stop()
if ctx.k:  # disclosure mode (public dashboard, viewers): every figure under the policy
    public_views.labs(ctx)
    st.stop()

opts = data.run(ctx.snap, q.lab_options)
with_data = opts[opts["n_cases"] > 0]
choices = list(with_data["analyte"]) or list(opts["analyte"])
label_of = dict(zip(opts["analyte"], opts["label"]))
c1, c2, c3, c4 = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
with c1:
    analyte = st.selectbox("Analyte", choices, index=choices.index("calcium") if "calcium" in choices else 0, key="analyte",
                           format_func=lambda a: label_of.get(a, a), bind="query-params")
row = opts.set_index("analyte").loc[analyte]
with c2:
    units = st.segmented_control("Units", ["canonical", "si"], default="canonical", key="units", required=True,
                                 format_func=lambda u: "Canonical" if u == "canonical" else "SI", bind="query-params",
                                 help=f"Canonical: {row['canonical_unit']}; SI: {row['si_unit']}.")
with c3:
    values = st.segmented_control("Values", ["baseline", "all"], default="baseline", key="values", required=True,
                                  format_func=lambda v: "Baseline" if v == "baseline" else "All", bind="query-params",
                                  help="Baseline: each case's earliest value (one per case). All: every value of every case.")
with c4:
    stratum = ui.stratum_picker("Compare by", "labs_by", default="none")
si = units == "si"
res = data.run(ctx.snap, q.lab_queries, ctx.filter, analyte, si=si, baseline_only=values != "all", stratum=stratum)
info = res["info"]

ref = "–" if info["ref_high"] is None else f"{labels.fmt_num(info['ref_low'] or 0, 3 if info['ref_high'] < 10 else 1)}–{labels.fmt_num(info['ref_high'], 3 if info['ref_high'] < 10 else 1)} {info['unit']}"
title = f"{info['label']} ({info['unit']})" + (f" by {labels.STRATA[stratum].lower()}" if stratum else "")
ui.chart(charts.histogram_figure(res["histogram"], title=title, unit=info["unit"], ref_low=info["ref_low"], ref_high=info["ref_high"],
                                 per_group=res["histograms"] or None, note=ctx.note, x_title=f"{info['label']} ({info['unit']})",
                                 y_title="Cases" if values != "all" else "Values"),
         key="hist")
clipped = res["histogram"].attrs.get("clipped", 0) if not res["histogram"].empty else 0
st.caption(f"{res['n_values']:,} value{'s' if res['n_values'] != 1 else ''}. Shaded: the analyte's default reference range ({ref}). "
           + (f"{clipped:,} values beyond the 0.5th–99.5th percentiles are drawn in the edge bins. " if clipped else "")
           + "% below / above range use each value's own range (the record's, else the default).")


def summary_table(summary, unit, *, high_label="Above range (%)", low=True):
    s = summary.copy()
    s["IQR"] = [f"{a:.3g}–{b:.3g}" if not pd.isna(a) else "–" for a, b in zip(s["p25"], s["p75"])]
    cols = ["group", "n", "median", "IQR", "mean", "sd", "min", "max"] + (["pct_low"] if low else []) + ["pct_high"]
    cfg = {c: st.column_config.NumberColumn(labels.pretty(c) + f" ({unit})", format="%.3g") for c in ("median", "mean", "sd", "min", "max")}
    cfg |= {"pct_low": ui.pct_column("Below range (%)"), "pct_high": ui.pct_column(high_label)}
    return s[cols], cfg


st.subheader("Summary")
out, cfg = summary_table(res["summary"], info["unit"])
out = out.rename(columns={"group": labels.STRATA[stratum] if stratum else "Group"})
ui.table(out, f"lab_summary_{analyte}_{'si' if si else 'canonical'}", csv=res["summary"].assign(unit=info["unit"]), column_config=cfg,
         key="lab_summary")

st.divider()
st.subheader("Calcium × phosphate product")
capp = data.run(ctx.snap, q.capp_queries, ctx.filter, si=si)
thr = capp["threshold"]
ui.chart(charts.histogram_figure(capp["histogram"], title=f"Calcium × phosphate product ({capp['unit']})", unit=capp["unit"],
                                 ref_low=None, ref_high=None, note=ctx.note, x_title=f"Ca × P ({capp['unit']})",
                                 threshold=thr, threshold_label=f"{thr:.3g} {capp['unit']}", y_title="Cases"), key="capp")
st.caption(f"Baseline calcium × baseline phosphate of the {capp['n_values']:,} case{'s' if capp['n_values'] != 1 else ''} with both. "
           f"Threshold {thr:.3g} {capp['unit']} (KDOQI 2003: keep below 55 mg²/dL²); *above range* is the share above it.")
out, cfg = summary_table(capp["summary"], capp["unit"], high_label=f"Above {thr:.3g} (%)", low=False)
ui.table(out, f"calcium_phosphate_product_{'si' if si else 'canonical'}", csv=capp["summary"].assign(unit=capp["unit"]),
         column_config=cfg, key="capp_summary")
