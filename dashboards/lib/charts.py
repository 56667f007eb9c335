"""Plotly figures of the dashboards: plain functions of DataFrames (no Streamlit, no database).

Every figure gets a title, readable axis titles and, when the cohort includes synthetic cases, a
subtitle saying so (``note``). Colours are the Okabe–Ito palette (safe for colour-blind readers).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.lib import labels

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#7F7F7F", "#F0E442",
           "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#AA4499")
PRIMARY = "#0F5E7A"
SYNTHETIC = "#A7B7C2"
REAL = PRIMARY
REF_BAND = "rgba(0, 158, 115, 0.12)"
FLAG_COLOURS = {"low": "#0072B2", "normal": "#009E73", "high": "#D55E00", None: "#7F7F7F"}
FONT = "Source Sans, Source Sans Pro, -apple-system, Segoe UI, Helvetica Neue, Arial, sans-serif"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    return f"rgba({r}, {g}, {b}, {alpha})"


def _layout(fig: go.Figure, title: str, note: str | None = None, *, height: int = 380, legend: bool = True,
            margin_l: int = 10) -> go.Figure:
    t: dict[str, Any] = {"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}}
    if note:
        t["subtitle"] = {"text": note, "font": {"size": 12, "color": "#8A5A00"}}
    fig.update_layout(
        title=t,
        height=height,
        margin={"l": margin_l, "r": 10, "t": 70 if note else 48, "b": 10},
        font={"family": FONT, "size": 13},
        template="plotly_white",
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1, "title": None},
        hoverlabel={"font": {"family": FONT}},
        bargap=0.15,
    )
    return fig


def empty_figure(title: str, message: str = "No cases in this cohort", note: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 15, "color": "#666"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, note, height=260, legend=False)


# ----------------------------------------------------------------------------- overview


def by_year_figure(by_year: pd.DataFrame, note: str | None = None) -> go.Figure:
    df = by_year.dropna(subset=["index_year"])
    if df.empty:
        return empty_figure("Cases by index year", "No index year reported", note)
    fig = go.Figure()
    for syn, name, col in ((False, "Real", REAL), (True, "Synthetic", SYNTHETIC)):
        d = df[df["is_synthetic"] == syn]
        if len(d):
            fig.add_bar(x=d["index_year"].astype(int), y=d["n"], name=name, marker_color=col,
                        hovertemplate="%{x}: %{y:,} cases<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="Index year (year of day 0)", dtick=2 if df["index_year"].nunique() > 12 else 1)
    fig.update_yaxes(title="Cases", tickformat=",")
    return _layout(fig, "Cases by index year", note)


def by_site_figure(by_site: pd.DataFrame, note: str | None = None) -> go.Figure:
    if by_site.empty:
        return empty_figure("Cases by site", note=note)
    totals = by_site.groupby("site_id")["n"].sum().sort_values()
    fig = go.Figure()
    for syn, name, col in ((False, "Real", REAL), (True, "Synthetic", SYNTHETIC)):
        d = by_site[by_site["is_synthetic"] == syn].set_index("site_id").reindex(totals.index)
        if d["n"].notna().any():
            fig.add_bar(y=totals.index, x=d["n"].fillna(0), name=name, orientation="h", marker_color=col,
                        hovertemplate="%{y}: %{x:,} cases<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="Cases", tickformat=",")
    fig.update_yaxes(title=None, automargin=True)
    return _layout(fig, "Cases by site", note, height=max(300, 70 + 22 * len(totals)))


def kidney_figure(kidney: pd.DataFrame, vocab=None, note: str | None = None) -> go.Figure:
    if kidney.empty:
        return empty_figure("Kidney status at presentation", note=note)
    names = [labels.value_label("kidney_status", v, vocab) for v in kidney["kidney_status"]]
    fig = go.Figure(go.Bar(
        y=names, x=kidney["pct"] * 100, orientation="h", marker_color=[colour(i) for i in range(len(names))],
        text=[f"{100 * p:.1f}% ({n:,})" for p, n in zip(kidney["pct"], kidney["n"])], textposition="auto",
        hovertemplate="%{y}: %{x:.1f}% of cases<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title=None, automargin=True)
    fig.update_xaxes(title="% of cases", ticksuffix="%", range=[0, 100])
    return _layout(fig, "Kidney status at presentation", note, legend=False, height=max(220, 100 + 34 * len(names)))


# ----------------------------------------------------------------------------- mortality


def km_figure(curves: pd.DataFrame, groups: Sequence[str], *, note: str | None = None, max_day: float | None = None,
              title: str = "Kaplan–Meier survival", bands: bool = True, legend_title: str | None = None) -> go.Figure:
    """Step curves with their 95% confidence bands (``bands``), one colour per group."""
    if curves.empty:
        return empty_figure(title, "No case with a known outcome", note)
    fig = go.Figure()
    for i, g in enumerate(groups):
        c = curves[curves["group"] == g]
        if c.empty:
            continue
        col = colour(i)
        x = c["day"].to_numpy(dtype=float)
        if bands:
            alpha = 0.18 if len(groups) <= 2 else (0.12 if len(groups) <= 4 else 0.07)
            fig.add_scatter(x=x, y=c["ci_upper"] * 100, mode="lines", line={"width": 0, "shape": "hv"}, hoverinfo="skip",
                            showlegend=False, legendgroup=g)
            fig.add_scatter(x=x, y=c["ci_lower"] * 100, mode="lines", line={"width": 0, "shape": "hv"}, fill="tonexty",
                            fillcolor=_rgba(col, alpha), hoverinfo="skip", showlegend=False, legendgroup=g)
        fig.add_scatter(
            x=x, y=c["survival"] * 100, mode="lines", name=g, legendgroup=g, line={"color": col, "width": 2.2, "shape": "hv"},
            customdata=np.stack([c["ci_lower"] * 100, c["ci_upper"] * 100, c["n_at_risk"]], axis=-1),
            hovertemplate="Day %{x:,}: %{y:.1f}% (95% CI %{customdata[0]:.1f}–%{customdata[1]:.1f}%), "
                          "%{customdata[2]:,} at risk<extra>" + g + "</extra>",
        )
    right = max_day or float(curves["day"].max())
    ticks = [d for d in (0, 90, 180, 365, 730, 1095, 1460, 1825, 2190, 2555, 2920) if d <= right * 1.02]
    fig.update_xaxes(title="Days since presentation (day 0)", range=[0, right], tickvals=ticks)
    fig.update_yaxes(title="Surviving (%)", range=[0, 101], ticksuffix="%")
    fig = _layout(fig, title, note, height=440, legend=len(groups) > 1)
    if legend_title:
        fig.update_layout(legend_title_text=legend_title + ":")
    return fig


def causes_figure(causes: pd.DataFrame, vocab=None, note: str | None = None) -> go.Figure:
    if causes.empty:
        return empty_figure("Causes of death", "No deaths in this cohort", note)
    names = [cause_label(v, vocab) for v in causes["cause_of_death"]]
    fig = go.Figure(go.Bar(
        y=names, x=causes["n"], orientation="h", marker_color=PRIMARY,
        text=[f"{n:,} ({100 * p:.0f}%)" for n, p in zip(causes["n"], causes["pct_of_deaths"])], textposition="auto",
        hovertemplate="%{y}: %{x:,} deaths<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title=None, automargin=True)
    fig.update_xaxes(title="Deaths", tickformat=",")
    return _layout(fig, "Causes of death", note, legend=False, height=max(220, 100 + 34 * len(names)))


def cause_label(v: Any, vocab=None) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "Not reported"
    return labels.value_label("cause_of_death", v, vocab)


# ----------------------------------------------------------------------------- organs


def organ_frequency_figure(freq: pd.DataFrame, vocab=None, note: str | None = None) -> go.Figure:
    if freq.empty:
        return empty_figure("Organ involvement", note=note)
    d = freq.sort_values("n")
    names = [labels.value_label("organ", v, vocab) for v in d["organ"]]
    cols = [PRIMARY if g == "cutaneous" else "#D55E00" for g in d["organ_group"]]
    fig = go.Figure(go.Bar(
        y=names, x=d["pct_of_cases"] * 100, orientation="h", marker_color=cols,
        text=[f"{100 * p:.1f}% ({n:,})" for p, n in zip(d["pct_of_cases"], d["n"])], textposition="auto",
        customdata=d["organ_group"], hovertemplate="%{y} (%{customdata}): %{x:.1f}% of cases<extra></extra>",
    ))
    fig.update_xaxes(title="% of cases", ticksuffix="%")
    fig.update_yaxes(title=None, automargin=True)
    return _layout(fig, "Organs with calcific vasculopathy (blue: cutaneous, orange: visceral)", note, legend=False,
                   height=max(300, 80 + 26 * len(d)))


def cooccurrence_figure(freq: pd.DataFrame, co: pd.DataFrame, vocab=None, note: str | None = None) -> go.Figure:
    """Cases having both organs; the diagonal is each organ's own count."""
    title = "Co-occurrence: cases with both organs"
    if freq.empty:
        return empty_figure(title, note=note)
    organs = list(freq.sort_values(["sort_order", "organ"])["organ"])
    idx = {o: i for i, o in enumerate(organs)}
    m = np.zeros((len(organs), len(organs)))
    for a, b, n in co[["organ_a", "organ_b", "n"]].itertuples(index=False):
        if a in idx and b in idx:
            m[idx[a], idx[b]] = m[idx[b], idx[a]] = n
    diag = dict(zip(freq["organ"], freq["n"]))
    with np.errstate(divide="ignore"):
        z = np.where(m > 0, np.log10(np.maximum(m, 1)), np.nan)  # log colour scale: skin pairs would swamp it
    for o, i in idx.items():
        z[i, i] = np.nan  # shown as text only
    text = [[(f"{int(diag[organs[i]]):,}" if i == j else (f"{int(m[i, j]):,}" if m[i, j] else "")) for j in range(len(organs))]
            for i in range(len(organs))]
    names = [labels.value_label("organ", o, vocab) for o in organs]
    top = max(1.0, float(np.nanmax(z)) if np.isfinite(z).any() else 1.0)
    ticks = [t for t in (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000) if math.log10(t) <= top + 0.01]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="Blues", hoverongaps=False, zmin=0, zmax=top,
        customdata=m, colorbar={"title": {"text": "Cases"}, "thickness": 12, "tickvals": [math.log10(t) for t in ticks],
                                "ticktext": [f"{t:,}" for t in ticks]},
        xgap=1, ygap=1, hovertemplate="%{y} and %{x}: %{customdata:,} cases<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(tickangle=-35, automargin=True)
    side = max(360, 120 + 34 * len(organs))
    fig = _layout(fig, title, note, legend=False, height=side)
    fig.update_layout(plot_bgcolor="#F4F6F8")
    return fig


def visceral_by_stratum_figure(by: pd.DataFrame, stratum_label: str, note: str | None = None) -> go.Figure:
    title = f"Cutaneous only versus visceral, by {stratum_label.lower()}"
    if by.empty or by["n_cases"].sum() == 0:
        return empty_figure(title, note=note)
    fig = go.Figure()
    for col, name, c in (("pct_cutaneous_only", "Cutaneous only", PRIMARY), ("pct_visceral", "Visceral", "#D55E00")):
        ncol = col.replace("pct_", "n_")
        fig.add_bar(y=by["group"], x=by[col] * 100, name=name, orientation="h", marker_color=c,
                    text=[f"{100 * p:.1f}%" for p in by[col]], textposition="inside", insidetextanchor="middle",
                    customdata=by[ncol], hovertemplate="%{y}: %{x:.1f}% (%{customdata:,} cases)<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack", legend_traceorder="normal")
    fig.update_yaxes(autorange="reversed", title=None, automargin=True, type="category")
    fig.update_xaxes(title="% of cases", range=[0, 100], ticksuffix="%")
    return _layout(fig, title, note, height=max(260, 110 + 34 * len(by)))


# ----------------------------------------------------------------------------- labs


def _ref_band(fig: go.Figure, lo: float | None, hi: float | None, label: str = "Reference range") -> None:
    if lo is None and hi is None:
        return
    x0 = lo if lo is not None else 0
    if hi is not None:
        fig.add_vrect(x0=x0, x1=hi, fillcolor=REF_BAND, line_width=0, layer="below",
                      annotation_text=label, annotation_position="top left", annotation_font_color="#2E7D5B")
    else:
        fig.add_vline(x=x0, line_dash="dot", line_color="#2E7D5B", annotation_text=label)


def histogram_figure(hist: pd.DataFrame, *, title: str, unit: str, ref_low: float | None, ref_high: float | None,
                     per_group: dict[str, np.ndarray] | None = None, note: str | None = None,
                     ref_label: str = "Reference range", x_title: str | None = None,
                     threshold: float | None = None, threshold_label: str = "", y_title: str = "Values") -> go.Figure:
    """Bars of ``hist`` (bin_start, bin_end, n); with ``per_group``, one line per group (% of its values)."""
    if hist.empty:
        return empty_figure(title, "No values in this cohort", note)
    centres = (hist["bin_start"] + hist["bin_end"]) / 2
    width = float(hist["bin_end"].iloc[0] - hist["bin_start"].iloc[0])
    fig = go.Figure()
    if per_group:
        for i, (g, counts) in enumerate(per_group.items()):
            tot = max(int(np.sum(counts)), 1)
            fig.add_scatter(x=centres, y=100 * np.asarray(counts) / tot, mode="lines", name=f"{g} (n={tot:,})",
                            line={"color": colour(i), "width": 2, "shape": "hvh"},
                            hovertemplate="%{x:.3g} " + unit + ": %{y:.1f}%<extra>" + g + "</extra>")
        fig.update_yaxes(title="% of the group's values", ticksuffix="%")
    else:
        fig.add_bar(x=centres, y=hist["n"], width=width * 0.92, marker_color=PRIMARY, name="Cases",
                    customdata=np.stack([hist["bin_start"], hist["bin_end"]], axis=-1),
                    hovertemplate="%{customdata[0]:.3g}–%{customdata[1]:.3g} " + unit + ": %{y:,} " + y_title.lower() + "<extra></extra>")
        fig.update_yaxes(title=y_title, tickformat=",")
    _ref_band(fig, ref_low, ref_high, ref_label)
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="#D55E00", line_width=2,
                      annotation_text=threshold_label, annotation_position="top right", annotation_font_color="#D55E00")
    fig.update_xaxes(title=x_title or unit)
    return _layout(fig, title, note, height=400, legend=bool(per_group))


# ----------------------------------------------------------------------------- one case


def case_labs_figure(labs: pd.DataFrame, note: str | None = None) -> go.Figure:
    """Each lab value's position against its reference range: 0 = lower limit, 1 = upper limit."""
    title = "Labs against their reference ranges"
    d = labs.dropna(subset=["ref_high"]).copy()
    if d.empty:
        return empty_figure(title, "No lab value with a reference range", note)
    lo = d["ref_low"].fillna(0.0)
    span = (d["ref_high"] - lo).where(lambda s: s > 0, np.nan)
    d["pos"] = (d["value"] - lo) / span
    d["shown"] = d["pos"].clip(-1.5, 4.0)
    d["name"] = d["analyte_label"].fillna(d["analyte"]) + np.where(d.duplicated("analyte", keep=False), " (day " + d["day"].astype("string").fillna("?") + ")", "")
    d = d.iloc[::-1]
    fig = go.Figure()
    fig.add_vrect(x0=0, x1=1, fillcolor=REF_BAND, line_width=0, layer="below", annotation_text="Reference range",
                  annotation_position="top left", annotation_font_color="#2E7D5B")
    for flag in ("low", "normal", "high"):
        s = d[d["flag"] == flag]
        if s.empty:
            continue
        fig.add_scatter(
            x=s["shown"], y=s["name"], mode="markers", name=flag.capitalize(),
            marker={"size": 11, "color": FLAG_COLOURS[flag], "symbol": "diamond" if flag != "normal" else "circle",
                    "line": {"width": 1, "color": "white"}},
            customdata=np.stack([s["value"], s["unit"].fillna(""), s["ref_low"].fillna(np.nan), s["ref_high"]], axis=-1),
            hovertemplate="%{y}: %{customdata[0]:.4g} %{customdata[1]} (range %{customdata[2]:.4g}–%{customdata[3]:.4g})<extra></extra>",
        )
    fig.update_xaxes(title="Position in the reference range (0 = lower limit, 1 = upper limit; clipped at −1.5 and 4)",
                     range=[-1.7, 4.2], zeroline=False)
    fig.update_yaxes(title=None, automargin=True)
    return _layout(fig, title, note, height=max(300, 90 + 24 * len(d)))


def case_timeline_figure(case: dict, treatments: pd.DataFrame, labs: pd.DataFrame, vocab=None, note: str | None = None) -> go.Figure:
    """Onset, diagnosis, treatments, lab samples and the end of follow-up on the day axis."""
    rows: list[tuple[str, float, str]] = []

    def add(track: str, day: Any, text: str) -> None:
        if day is not None and not (isinstance(day, float) and math.isnan(day)) and day is not pd.NA:
            rows.append((track, float(day), text))

    add("Course", case.get("onset_day"), "First symptom")
    add("Course", 0, "Day 0: presentation")
    add("Course", case.get("diagnosis_day"), "Diagnosis (" + labels.value_label("diagnosis_basis", case.get("diagnosis_basis"), vocab).lower() + ")")
    end = case.get("followup_days")
    status = case.get("vital_status")
    add("Course", end, "Death" if status == "dead" else ("Last contact" if status == "alive" else "Last follow-up"))
    for t, day in treatments[["treatment", "day"]].itertuples(index=False):
        add("Treatments", day, labels.value_label("treatment", t, vocab))
    if not labs.empty:
        for day, g in labs.groupby("day", dropna=True):
            add("Lab samples", day, f"{len(g)} lab values")
    title = "Course of the case (days relative to day 0)"
    if not rows:
        return empty_figure(title, "No dated event", note)
    d = pd.DataFrame(rows, columns=["track", "day", "text"])
    symbols = {"Course": "diamond", "Treatments": "circle", "Lab samples": "square"}
    cols = {"Course": PRIMARY, "Treatments": "#E69F00", "Lab samples": "#009E73"}
    fig = go.Figure()
    lo, hi = d["day"].min(), d["day"].max()
    fig.add_shape(type="line", x0=lo, x1=hi, y0="Course", y1="Course", line={"color": "#B0BEC5", "width": 3}, layer="below")
    for track in ("Lab samples", "Treatments", "Course"):
        s = d[d["track"] == track]
        if s.empty:
            continue
        fig.add_scatter(x=s["day"], y=s["track"], mode="markers", name=track, text=s["text"],
                        marker={"size": 13, "symbol": symbols[track], "color": cols[track], "line": {"width": 1, "color": "white"}},
                        hovertemplate="Day %{x}: %{text}<extra></extra>")
    if status == "dead" and end is not None and not pd.isna(end):
        fig.add_vline(x=float(end), line_dash="dash", line_color="#555", annotation_text="Death", annotation_position="top")
    fig.update_xaxes(title="Day relative to day 0 (first presentation)", zeroline=True, zerolinecolor="#999")
    tracks = [t for t in ("Lab samples", "Treatments", "Course") if (d["track"] == t).any()]
    fig.update_yaxes(title=None, automargin=True, categoryorder="array", categoryarray=tracks)
    return _layout(fig, title, note, height=150 + 45 * len(tracks), legend=False)


# ----------------------------------------------------------------------------- quality


def completeness_figure(comp: pd.DataFrame) -> go.Figure:
    d = comp.sort_values("pct_known")
    fig = go.Figure(go.Bar(
        y=d["field"], x=d["pct_known"] * 100, orientation="h",
        marker_color=["#D55E00" if p < 0.8 else ("#E69F00" if p < 0.95 else "#009E73") for p in d["pct_known"].fillna(0)],
        text=["–" if pd.isna(p) else f"{100 * p:.1f}%" for p in d["pct_known"]], textposition="auto",
        customdata=np.stack([d["n_known"], d["n_applicable"], d["applies_to"]], axis=-1),
        hovertemplate="%{y}: known for %{customdata[0]:,} of %{customdata[1]:,} %{customdata[2]}<extra></extra>",
    ))
    fig.update_xaxes(title="Known (% of the cases the field applies to)", range=[0, 100], ticksuffix="%")
    fig.update_yaxes(title=None, automargin=True)
    return _layout(fig, "Completeness of each field", None, legend=False, height=max(320, 80 + 24 * len(d)))


def submissions_figure(subs: pd.DataFrame) -> go.Figure:
    title = "Records received per day"
    if subs.empty:
        return empty_figure(title, "Nothing submitted yet")
    fig = go.Figure()
    day_ms = 0.8 * 86_400_000  # bar width on a date axis is in milliseconds
    fig.add_bar(x=subs["day"], y=subs["n_accepted"], name="Accepted", marker_color="#009E73", width=day_ms,
                hovertemplate="%{x|%Y-%m-%d}: %{y:,} accepted<extra></extra>")
    fig.add_bar(x=subs["day"], y=subs["n_quarantined"], name="Quarantined", marker_color="#D55E00", width=day_ms,
                hovertemplate="%{x|%Y-%m-%d}: %{y:,} quarantined<extra></extra>")
    fig.update_layout(barmode="stack")
    days = pd.to_datetime(subs["day"])
    lo, hi = days.min(), days.max()
    if (hi - lo).days < 14:  # a few days: keep the bars narrow
        pad = pd.Timedelta(days=7 - (hi - lo).days / 2)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    fig.update_xaxes(title="Day (UTC)", type="date", tickformat="%Y-%m-%d")
    fig.update_yaxes(title="Records", tickformat=",")
    return _layout(fig, title, None, height=340)


# ----------------------------------------------------------------------------- analysis


def cif_stacked_figure(curves: pd.DataFrame, vocab=None, note: str | None = None,
                       title: str = "Cumulative incidence of death by cause") -> go.Figure:
    """Aalen–Johansen curves stacked by cause (the top edge is 1 − Kaplan–Meier)."""
    if curves is None or curves.empty:
        return empty_figure(title, "No case with a known outcome", note)
    days = np.unique(curves["day"].to_numpy(dtype=float))
    fig = go.Figure()
    for i, (cause, g) in enumerate(curves.groupby("cause", sort=False)):
        s = g.set_index("day")["cumulative_incidence"]
        s.index = s.index.astype(float)
        y = s.reindex(days).ffill().fillna(0.0).to_numpy() * 100
        name = labels.value_label("cause_of_death", cause, vocab)
        fig.add_scatter(x=days, y=y, mode="lines", name=name, stackgroup="cif", line={"shape": "hv", "width": 0.8, "color": colour(i)},
                        hovertemplate="Day %{x:,}: %{y:.1f}%<extra>" + name + "</extra>")
    right = float(days.max())
    ticks = [d for d in (0, 30, 90, 180, 365, 730, 1095, 1460, 1825) if d <= right * 1.02]
    fig.update_xaxes(title="Days since presentation (day 0)", range=[0, right], tickvals=ticks)
    fig.update_yaxes(title="Cumulative incidence of death (%)", range=[0, 100], ticksuffix="%")
    return _layout(fig, title, note, height=440)


def forest_figure(model: dict, vocab=None, note: str | None = None, title: str = "Hazard ratios (95% CI)") -> go.Figure:
    """Forest plot of a Cox model's hazard ratios on a log axis, one row per term (top to bottom)."""
    rows = (model or {}).get("covariates") or []
    if not rows:
        return empty_figure(title, "No model", note)
    names = [forest_label(r, vocab) for r in rows]
    hr = np.array([r["hazard_ratio"] for r in rows], dtype=float)
    lo = np.array([r["ci_lower"] for r in rows], dtype=float)
    hi = np.array([r["ci_upper"] for r in rows], dtype=float)
    fig = go.Figure()
    fig.add_scatter(x=hr, y=names, mode="markers", marker={"symbol": "square", "size": 9, "color": PRIMARY},
                    error_x={"type": "data", "symmetric": False, "array": hi - hr, "arrayminus": hr - lo, "color": PRIMARY},
                    customdata=np.stack([lo, hi, [r["p"] for r in rows]], axis=-1), showlegend=False,
                    hovertemplate="%{y}: HR %{x:.2f} (95% CI %{customdata[0]:.2f}–%{customdata[1]:.2f}), p %{customdata[2]:.3g}<extra></extra>")
    fig.add_vline(x=1, line={"dash": "dash", "color": "#777", "width": 1})
    fig.update_xaxes(type="log", title="Hazard ratio (log scale)")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, note, height=max(260, 44 * len(rows) + 120), legend=False)


def forest_label(r: dict, vocab=None) -> str:
    name = labels.COLUMN_LABELS.get(r["covariate"], labels.pretty(r["covariate"]))
    if r["level"] is None:
        unit = {"age_years": "year", "bmi": "kg/m²", "dialysis_vintage_months": "month", "organ_count": "organ"}.get(r["covariate"])
        return f"{name}, per {unit or 'unit'}"
    lv = labels.value_label(r["covariate"], r["level"] if r["covariate"] not in labels.BOOLEAN_COLUMNS else r["level"] == "true", vocab)
    ref = labels.value_label(r["covariate"], r["reference"] if r["covariate"] not in labels.BOOLEAN_COLUMNS else r["reference"] == "true", vocab)
    return f"{name}: {lv} vs {ref}"
