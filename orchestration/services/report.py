"""The registry report a coordinating centre circulates: one self-contained HTML file or a PDF.

``build_report(cohort)`` computes every figure from the cohort of the published snapshot with the
same statistics the dashboards and ``registry analysis`` use (``orchestration.analytics``);
``render_html`` writes one HTML file whose figures are embedded as base64 PNG (it opens offline,
no script, no external resource) and ``render_pdf`` writes the same report as a PDF.

Choices:

* Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``; no pyplot
  state, no display needed). The PDF is written with matplotlib's own ``PdfPages`` backend: it is
  already a dependency (pinned), installs from PyPI as a wheel and needs no browser, LaTeX or system
  library, so it works offline on any machine the registry runs on (weasyprint needs Pango and
  reportlab would add a second drawing stack). Tables in the PDF are matplotlib tables, paginated.
* Every text that comes from the data (codes, site names, the cohort definition) is escaped in the
  HTML (``html.escape``); in the PDF it is drawn as text, never interpreted.
* The report states the snapshot it was generated from (version and publication time), so the
  numbers of a paper can be reproduced from that snapshot with ``registry report --filter ...``.

TODO (disclosure issue): ``public``/``min_cell`` -- suppress small cells (counts below ``min_cell``)
for a report circulated outside the registry. The hook is here; the policy is not implemented yet,
so asking for it is refused rather than silently ignored.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from orchestration.analytics import competing_risks, cox, stats, table1, wounds
from orchestration.analytics import variables as V
from orchestration.analytics.errors import AnalysisError
from orchestration.contract import reference

__all__ = ["DEFAULT_COVARIATES", "build_report", "cif_figure", "forest_figure", "render_html", "render_pdf", "table1_display"]

DEFAULT_TABLE1_BY = "vital_status"
DEFAULT_COVARIATES: tuple[str, ...] = ("age_years", "sex", "kidney_status", "diabetes", "warfarin",
                                       "visceral_involvement", "lesion_distribution")
AT_RISK_DAYS: tuple[int, ...] = (0, 30, 90, 180, 365)
COMPLETENESS_COLUMNS: tuple[str, ...] = (
    "age_years", "sex", "kidney_status", "diabetes", "obesity", "warfarin", "hypertension", "malignancy", "bmi",
    "diagnosis_basis", "vital_status", "followup_days", "cause_of_death", "wound_healing", "baseline_calcium",
    "baseline_phosphate", "baseline_pth", "baseline_albumin", "index_year",
)
COLORS = ["#1f5f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#999999", "#00798c", "#2e4057"]


# ----------------------------------------------------------------------------- helpers


def _fmt_n_pct(n: int, pct: float | None) -> str:
    return f"{n:,}" if pct is None else f"{n:,} ({pct:.1f}%)"


def _fmt_num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _label(vocab: dict[tuple[str, str], str], column: str, code: Any) -> str:
    code = str(code)
    if code in ("true", "false"):
        return {"true": "Yes", "false": "No"}[code]
    if code == V.UNKNOWN:
        return "Unknown"
    return vocab.get((column, code), code)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# ----------------------------------------------------------------------------- figures


def km_figure(curve: pd.DataFrame, title: str = "Kaplan–Meier survival (all cases)") -> Figure:
    """Kaplan–Meier curve with its 95 % band and the number at risk under the axis."""
    fig = Figure(figsize=(8, 4.6))
    ax = fig.add_axes((0.1, 0.3, 0.85, 0.6))
    if len(curve):
        ax.step(curve["day"], curve["survival"], where="post", color=COLORS[0], lw=1.8, label="Survival")
        ax.fill_between(curve["day"], curve["ci_lower"], curve["ci_upper"], step="post", color=COLORS[0], alpha=0.18,
                        label="95% CI")
        ax.legend(loc="upper right", frameon=False)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max(400, float(curve["day"].max()) if len(curve) else 400))
    ax.set_ylabel("Survival probability")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(alpha=0.3)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    at = fig.add_axes((0.1, 0.05, 0.85, 0.12))
    at.set_xlim(ax.get_xlim())
    at.axis("off")
    at.text(0, 1.0, "Number at risk", fontsize=8, fontweight="bold", transform=at.transAxes, va="top")
    for d, n in _at_risk(curve, ticks):
        at.text(d, 0.3, f"{n:,}", ha="center", fontsize=8)
    ax.set_xlabel("Days from day 0")
    return fig


def _at_risk(curve: pd.DataFrame, days) -> list[tuple[int, int]]:
    """Cases still followed at the start of each day: the at-risk count of the first curve row on
    or after the day (no case leaves between two rows), 0 after the last."""
    if not len(curve):
        return [(d, 0) for d in days]
    dd = curve["day"].to_numpy()
    n_at = curve["n_at_risk"].to_numpy()
    out = []
    for d in days:
        i = int(np.searchsorted(dd, d, side="left"))
        out.append((d, int(n_at[i]) if i < dd.size else 0))
    return out


def cif_figure(curves: pd.DataFrame, vocab: dict[tuple[str, str], str]) -> Figure:
    """Cumulative incidence of death by cause, stacked (the top edge is 1 − Kaplan–Meier)."""
    fig = Figure(figsize=(8, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    if len(curves):
        days = np.unique(curves["day"].to_numpy())
        ys, labels = [], []
        for cause, g in curves.groupby("cause", sort=False):
            s = g.set_index("day")["cumulative_incidence"].reindex(days).ffill().fillna(0.0)
            ys.append(s.to_numpy())
            labels.append(_label(vocab, "cause_of_death", cause))
        ax.stackplot(days, *ys, labels=labels, colors=COLORS[: len(ys)], alpha=0.85, step="post")
        ax.legend(loc="upper left", frameon=False, fontsize=8)
        ax.set_xlim(0, max(400, float(days.max())))
    ax.set_ylim(0, 1)
    ax.set_xlabel("Days from day 0")
    ax.set_ylabel("Cumulative incidence of death")
    ax.set_title("Cumulative incidence of death by cause (Aalen–Johansen, stacked)", loc="left", fontsize=11)
    ax.grid(alpha=0.3)
    return fig


def forest_figure(model: dict[str, Any], vocab: dict[tuple[str, str], str]) -> Figure:
    """Hazard ratios with 95 % CIs on a log axis, one row per model term."""
    rows = model["covariates"]
    fig = Figure(figsize=(8, 0.45 * len(rows) + 1.4))
    ax = fig.add_axes((0.38, 0.12, 0.58, 0.8))
    y = np.arange(len(rows))[::-1]
    hr = np.array([r["hazard_ratio"] for r in rows], dtype=float)
    lo = np.array([r["ci_lower"] for r in rows], dtype=float)
    hi = np.array([r["ci_upper"] for r in rows], dtype=float)
    ax.errorbar(hr, y, xerr=[hr - lo, hi - hr], fmt="s", color=COLORS[0], ecolor=COLORS[0], capsize=3)
    ax.axvline(1.0, color="#555", lw=1, ls="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if round(v, 6) in (0.2, 0.5, 2.0, 5.0) else ""))
    ax.set_yticks(y)
    ax.set_yticklabels([_term_label(r, vocab) for r in rows], fontsize=8)
    ax.set_xlabel("Hazard ratio (95% CI), log scale")
    ax.set_title(f"Cox model of death: {model['n_used']:,} cases, {model['n_events']:,} deaths", loc="left", fontsize=11)
    ax.grid(alpha=0.3, axis="x")
    return fig


def _term_label(r: dict[str, Any], vocab: dict[tuple[str, str], str]) -> str:
    name = V.LABELS.get(r["covariate"], r["covariate"].replace("_", " "))
    if r["level"] is None:
        return f"{name} (per {V.CONTINUOUS.get(r['covariate'], 'unit').rstrip('s')})"
    return f"{name}: {_label(vocab, r['covariate'], r['level'])} vs {_label(vocab, r['covariate'], r['reference'])}"


def organ_figure(rows: list[dict[str, Any]]) -> Figure:
    fig = Figure(figsize=(8, 0.32 * max(len(rows), 1) + 1.2))
    ax = fig.add_axes((0.3, 0.1, 0.65, 0.82))
    names = [r["label"] for r in rows][::-1]
    pct = [r["percent"] for r in rows][::-1]
    colors = [COLORS[1] if r["group"] == "visceral" else COLORS[0] for r in rows][::-1]
    ax.barh(names, pct, color=colors)
    ax.set_xlabel("% of cases (blue: cutaneous, red: visceral)")
    ax.set_title("Organ involvement", loc="left", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    return fig


# ----------------------------------------------------------------------------- the report's data


def _organs(c, vocab) -> list[dict[str, Any]]:
    o = c.organs if c.organs is not None else pd.DataFrame(columns=["case_id", "organ", "organ_group"])
    n = len(c.cases)
    rows = []
    for (organ, group), g in o.groupby(["organ", "organ_group"]):
        k = int(g["case_id"].nunique())
        rows.append({"organ": organ, "label": _label(vocab, "organ", organ), "group": group, "n": k,
                     "percent": 100.0 * k / n if n else 0.0})
    rows.sort(key=lambda r: (-r["n"], r["organ"]))
    return rows


def _labs(c) -> list[dict[str, Any]]:
    labs = c.labs if c.labs is not None else pd.DataFrame()
    if not len(labs):
        return []
    ref = reference.load().analytes
    out = []
    for r in stats.lab_distributions(labs).to_dict("records"):
        a = ref.get(r["analyte"])
        r["label"] = a.label if a else r["analyte"].replace("_", " ")
        r["ref_low_default"] = a.ref_low if a else None
        r["ref_high_default"] = a.ref_high if a else (stats.CAXP_HIGH if r["analyte"] == stats.CAXP_ANALYTE else None)
        out.append(r)
    return out


def _completeness(cases: pd.DataFrame) -> list[dict[str, Any]]:
    n = len(cases)
    rows = []
    for col in COMPLETENESS_COLUMNS:
        if col not in cases.columns:
            continue
        s = cases[col]
        if col == "cause_of_death":  # only deaths have a cause
            dead = V.coded(cases["died"], "died") == "true"
            s, denom = s[dead.to_numpy()], int(dead.sum())
        else:
            denom = n
        known = int((s.notna() & (s.astype(object) != V.UNKNOWN)).sum())
        rows.append({"column": col, "denominator": denom, "known": known,
                     "percent": 100.0 * known / denom if denom else None,
                     "note": "deaths only" if col == "cause_of_death" else ""})
    return rows


def _n_known_values(s: pd.Series, column: str) -> int:
    if V.kind(column) == "continuous":
        return int(pd.to_numeric(s, errors="coerce").nunique())
    return int(V.coded(s, column).loc[lambda x: x != V.UNKNOWN].nunique())


def build_report(c, *, by: str = DEFAULT_TABLE1_BY, covariates: tuple[str, ...] = DEFAULT_COVARIATES,
                 public: bool = False, min_cell: int | None = None) -> dict[str, Any]:
    """Every figure and table of the report for a :class:`orchestration.services.cohort.Cohort`."""
    if public or min_cell:
        # TODO(disclosure issue): small-cell suppression for public reports
        raise NotImplementedError("the disclosure policy (public report, min_cell) is not implemented yet")
    cases = c.cases
    vocab = dict(c.vocabulary or {})
    curve = stats.kaplan_meier(cases["followup_days"], cases["died"]) if len(cases) else stats.kaplan_meier([], [])
    summary = stats.survival_summary(cases["followup_days"], cases["died"]) if len(cases) else None
    curves = competing_risks.cumulative_incidence(cases["followup_days"], cases["died"], cases["cause_of_death"])
    # a covariate the filter fixed (e.g. kidney_status with --filter kidney_status=dialysis) cannot be
    # estimated: leave it out and say so
    usable = [c for c in covariates if c in cases.columns and _n_known_values(cases[c], c) >= 2]
    dropped = [c for c in covariates if c not in usable]
    try:
        model = cox.cox_model(cases, usable)
        if dropped:
            model["dropped"] = dropped
        model_error = None
    except AnalysisError as e:
        model, model_error = None, str(e)
    t1 = table1.table1(cases, by) if len(cases) else None
    n_syn = int(cases["is_synthetic"].astype(bool).sum()) if "is_synthetic" in cases.columns else 0
    return {
        "title": "Calciphylaxis registry report",
        "snapshot": c.version,
        "published_at": c.published_at,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cohort": c.definition,
        "n_cases": int(len(cases)),
        "n_registry": int(c.n_registry),
        "n_synthetic": n_syn,
        "vocab": vocab,
        "table1": t1,
        "km": curve,
        "km_summary": summary,
        "at_risk": _at_risk(curve, AT_RISK_DAYS),
        "cif": curves,
        "cif_at": competing_risks.cif_at(curves),
        "cox": model,
        "cox_error": model_error,
        "organs": _organs(c, vocab),
        "labs": _labs(c),
        "completeness": _completeness(cases),
        "wounds": wounds.healing_by_lesion_distribution(cases) if len(cases) else [],
    }


# ----------------------------------------------------------------------------- tables as rows of text


def table1_display(t: dict[str, Any], vocab: dict[tuple[str, str], str]) -> tuple[list[str], list[list[str]]]:
    """Table 1 of :func:`orchestration.analytics.table1.table1` as a header and rows of text, as
    published ("n (%)", "median (IQR) [k missing]", p, test, |SMD|); shared by the report and /analysis."""
    groups = [g["group"] for g in t["groups"]]
    header = ["Characteristic"] + [
        ("Overall" if g == table1.OVERALL else _label(vocab, t["by"], g)) + f" (n={n:,})"
        for g, n in ((g["group"], g["n"]) for g in t["groups"])] + ["p", "Test", "SMD"]
    rows = []
    for v in t["variables"]:
        name = V.LABELS.get(v["variable"], v["variable"].replace("_", " "))
        smds = [abs(x["smd"]) for x in v["smd"] if x["smd"] is not None]
        smd = "" if not smds else (f"{smds[0]:.3f}" if len(v["smd"]) == 1 else f"max {max(smds):.3f}")
        if v["type"] == "continuous":
            cells = []
            for g in groups:
                s = v["summary"][g]
                cells.append("–" if s["median"] is None else
                             f"{_fmt_num(s['median'])} ({_fmt_num(s['q1'])}–{_fmt_num(s['q3'])})"
                             + (f" [{s['n_missing']:,} missing]" if s["n_missing"] else ""))
            rows.append([f"{name}, {v['unit']}, median (IQR)"] + cells + [_fmt_p(v["p"]), v["test"] or "", smd])
        else:
            rows.append([f"{name}, n (%)"] + [""] * len(groups) + [_fmt_p(v["p"]), v["test"] or "", smd])
            for lv in v["levels"]:
                rows.append(["    " + _label(vocab, v["variable"], lv["level"])]
                            + [_fmt_n_pct(lv["counts"][g]["n"], lv["counts"][g]["percent"]) for g in groups] + ["", "", ""])
    return header, rows


def _sections(d: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, caption) of every table of the report, shared by HTML and PDF."""
    vocab = d["vocab"]
    out = []
    if d["table1"]:
        h, r = table1_display(d["table1"], vocab)
        out.append(("Table 1. Baseline characteristics by " + V.LABELS.get(d["table1"]["by"], d["table1"]["by"]).lower(), h, r,
                    "Counts (% of the group); 'Unknown' is its own row, never counted as 'No'. Median (IQR) for "
                    "continuous facts. Tests compare the known groups on known values (Kruskal–Wallis; chi-squared, or "
                    "Fisher's exact for a sparse 2×2 table). SMD: absolute standardised mean difference between two known "
                    "groups (the largest pair when there are more)."))
    out.append(("Number at risk", ["Day"] + [str(dd) for dd, _ in d["at_risk"]],
                [["At risk"] + [f"{n:,}" for _, n in d["at_risk"]]],
                "Cases with a known outcome still followed at the start of each day."))
    s = d["km_summary"]
    if s:
        out.append(("Survival (Kaplan–Meier)", ["", "30 d", "90 d", "180 d", "365 d", "Median (days)"],
                    [["Survival (95% CI)"] + [
                        "–" if s[f"survival_{k}d"] is None else
                        f"{s[f'survival_{k}d']:.3f} ({s[f'ci_lower_{k}d']:.3f}–{s[f'ci_upper_{k}d']:.3f})"
                        for k in stats.SURVIVAL_DAYS] + [str(s["median_survival_days"] or "not reached")]],
                    f"{s['n_known_outcome']:,} cases with a known outcome, {s['n_deaths']:,} deaths; 95% log(−log) "
                    "Greenwood bands."))
    cif_rows = []
    causes = list(dict.fromkeys(r["cause"] for r in d["cif_at"]))
    for cause in causes:
        cells = [f"{r['cumulative_incidence']:.3f} ({r['ci_lower']:.3f}–{r['ci_upper']:.3f})"
                 for r in d["cif_at"] if r["cause"] == cause]
        cif_rows.append([_label(vocab, "cause_of_death", cause)] + cells)
    out.append(("Cumulative incidence of death by cause", ["Cause", "30 d", "90 d", "180 d", "365 d"], cif_rows,
                "Aalen–Johansen estimator, deaths of one day handled together; a death without a cause counts as "
                "Unknown. 95% CI: delta-method variance (Marubini & Valsecchi), log(−log) scale."))
    m = d["cox"]
    if m:
        out.append(("Cox model of death", ["Term", "HR", "95% CI", "p", "PH test p"],
                    [[_term_label(r, vocab), f"{r['hazard_ratio']:.3f}", f"{r['ci_lower']:.3f}–{r['ci_upper']:.3f}",
                      _fmt_p(r["p"]), _fmt_p(ph["p"])] for r, ph in zip(m["covariates"], m["ph_test"])],
                    f"Complete cases: {m['n_used']:,} used, {m['n_excluded']:,} left out "
                    f"({m['excluded']['unknown_outcome']:,} unknown outcome, {m['excluded']['unknown_covariates']:,} "
                    f"unknown covariate); {m['n_events']:,} deaths; Efron ties. "
                    + (f"Left out (one value in this cohort): {', '.join(m['dropped'])}. " if m.get("dropped") else "")
                    + (m["ph_warning"] or "Proportional hazards: no Schoenfeld test below p 0.05.")))
    out.append(("Organ involvement", ["Organ", "Group", "Cases", "%"],
                [[r["label"], r["group"], f"{r['n']:,}", f"{r['percent']:.1f}"] for r in d["organs"]],
                "Cases with calcific vasculopathy of each organ (% of the cohort)."))
    out.append(("Baseline labs against reference ranges",
                ["Analyte", "Unit", "n", "Median (IQR)", "Reference", "Low", "High"],
                [[r["label"], r["unit"], f"{r['n']:,}",
                  f"{_fmt_num(r['median'], 2)} ({_fmt_num(r['p25'], 2)}–{_fmt_num(r['p75'], 2)})",
                  _ref(r), f"{r['n_low']:,} ({_fmt_num(r['pct_low'])}%)", f"{r['n_high']:,} ({_fmt_num(r['pct_high'])}%)"]
                 for r in d["labs"]],
                "Each case's earliest value; low/high against the range of the record or the analyte's default "
                "(shown). Ca×P: above 55 mg²/dL²."))
    out.append(("Wound healing by lesion distribution", ["Lesions", "n", "Complete", "Partial", "None",
                                                         "Not applicable", "Unknown", "Complete of assessed"],
                [[_label(vocab, "lesion_distribution", r["group"]) if r["group"] != "all" else "All", f"{r['n']:,}"]
                 + [_fmt_n_pct(r[f"n_{k}"], r[f"pct_{k}"]) for k in wounds.HEALING_LEVELS]
                 + [_fmt_num(r["pct_complete_of_assessed"]) + "%"] for r in d["wounds"]],
                "Healing at last contact. " + wounds.TREATMENT_CAUTION))
    out.append(("Data completeness", ["Column", "Known", "Of", "%"],
                [[V.LABELS.get(r["column"], r["column"].replace("_", " ")) + (f" ({r['note']})" if r["note"] else ""), f"{r['known']:,}",
                  f"{r['denominator']:,}", _fmt_num(r["percent"])] for r in d["completeness"]],
                "Known = neither missing nor recorded as unknown."))
    return out


def _ref(r: dict[str, Any]) -> str:
    lo, hi = r.get("ref_low_default"), r.get("ref_high_default")
    if lo is None and hi is None:
        return "–"
    if lo is None:
        return f"≤ {hi:g}"
    return f"{lo:g}–{hi:g}" if hi is not None else f"≥ {lo:g}"


def _figures(d: dict[str, Any]) -> dict[str, Figure]:
    figs = {"km": km_figure(d["km"]), "cif": cif_figure(d["cif"], d["vocab"])}
    if d["cox"]:
        figs["forest"] = forest_figure(d["cox"], d["vocab"])
    if d["organs"]:
        figs["organs"] = organ_figure(d["organs"])
    return figs


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f3f5f8}td:first-child,th:first-child{text-align:left;white-space:pre}
.meta{color:#555}.warn{background:#fff4e5;border-left:4px solid #edae49;padding:.5rem 1rem}.cap{color:#555;font-size:.85rem;max-width:60rem}
img{max-width:100%}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(d: dict[str, Any]) -> str:
    """The report as one self-contained HTML document (figures embedded as base64 PNG)."""
    e = html.escape
    figs = {k: base64.b64encode(_png(f)).decode("ascii") for k, f in _figures(d).items()}
    img = lambda k, alt: (f'<img alt="{e(alt)}" src="data:image/png;base64,{figs[k]}">' if k in figs else "")  # noqa: E731
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(d['title'])} – snapshot {e(str(d['snapshot']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(d['title'])}</h1>",
        f"<p class='meta'><strong>Generated from snapshot {e(str(d['snapshot']))}</strong>"
        + (f", published {e(str(d['published_at']))}" if d["published_at"] else "")
        + f"; generated {e(d['generated_at'])}.</p>",
        f"<p><strong>Cohort:</strong> {e(d['cohort'])}: {d['n_cases']:,} of the {d['n_registry']:,} cases of the snapshot.</p>",
    ]
    if d["n_synthetic"]:
        parts.append(f"<p class='warn'>Includes synthetic cases (n={d['n_synthetic']:,}), generated for testing and "
                     "demonstration.</p>")
    by_title = {}
    for title, header, rows, cap in _sections(d):
        by_title[title.split(".")[0] if title.startswith("Table 1") else title] = (title, header, rows, cap)

    def section(key: str, fig: str | None = None, alt: str = "") -> None:
        if key not in by_title:
            return
        title, header, rows, cap = by_title[key]
        parts.append(f"<h2>{e(title)}</h2>")
        if fig:
            parts.append(img(fig, alt))
        parts.append(_html_table(header, rows))
        parts.append(f"<p class='cap'>{e(cap)}</p>")

    section("Table 1")
    parts.append("<h2>Kaplan–Meier survival</h2>" + img("km", "Kaplan–Meier survival curve with number at risk"))
    section("Number at risk")
    section("Survival (Kaplan–Meier)")
    section("Cumulative incidence of death by cause", "cif", "Stacked cumulative incidence of death by cause")
    if d["cox"] is None:
        parts.append(f"<h2>Cox model of death</h2><p class='warn'>Not computed: {e(d['cox_error'] or '')}</p>")
    else:
        if d["cox"]["ph_warning"]:
            parts.append(f"<p class='warn'>{e(d['cox']['ph_warning'])}</p>")
        section("Cox model of death", "forest", "Forest plot of hazard ratios")
    section("Organ involvement", "organs", "Organ involvement")
    section("Baseline labs against reference ranges")
    section("Wound healing by lesion distribution")
    section("Data completeness")
    parts.append(f"<p class='meta'>Reproduce: <code>registry report OUT.html {e(_filter_args(d['cohort']))}</code> on "
                 f"snapshot {e(str(d['snapshot']))}.</p></body></html>")
    return "\n".join(parts)


def _filter_args(definition: str) -> str:
    if definition.startswith("All cases"):
        return ""
    return " ".join(f"--filter {p.replace(' = ', '=')}" for p in definition.split(" AND "))


# ----------------------------------------------------------------------------- PDF

_A4 = (8.27, 11.69)


def _text_page(pdf: PdfPages, lines: list[tuple[str, float, str]]) -> None:
    fig = Figure(figsize=_A4)
    y = 0.95
    for text, size, weight in lines:
        fig.text(0.07, y, text, fontsize=size, fontweight=weight, va="top", wrap=True)
        y -= 0.012 * size / 6 + 0.01 * (text.count("\n") + 1)
    pdf.savefig(fig)


def _table_pages(pdf: PdfPages, title: str, header: list[str], rows: list[list[str]], caption: str,
                 fig_before: Figure | None = None, per_page: int = 40) -> None:
    if fig_before is not None:
        pdf.savefig(fig_before)
    chunks = [rows[i:i + per_page] for i in range(0, max(len(rows), 1), per_page)] or [[]]
    for k, chunk in enumerate(chunks):
        fig = Figure(figsize=_A4 if len(header) <= 6 else _A4[::-1])
        fig.text(0.05, 0.96, title + (f" (continued {k + 1}/{len(chunks)})" if k else ""), fontsize=12, fontweight="bold",
                 va="top")
        ax = fig.add_axes((0.04, 0.1, 0.92, 0.82))
        ax.axis("off")
        if chunk:
            cells = [[str(c) for c in r] for r in chunk]
            widths = np.array([max([len(str(h))] + [len(r[i]) for r in cells]) for i, h in enumerate(header)], dtype=float)
            widths = np.maximum(widths, 7) / np.maximum(widths, 7).sum()  # columns as wide as their text, within the page
            height = min(1.0, 0.024 * (len(cells) + 1))
            tab = ax.table(cellText=cells, colLabels=[str(h) for h in header], colWidths=list(widths),
                           bbox=[0, 1 - height, 1, height], cellLoc="right", colLoc="center")
            tab.auto_set_font_size(False)
            tab.set_fontsize(6.5 if len(header) > 6 else 7.5)
            for (r, c), cell in tab.get_celld().items():
                if c == 0:
                    cell.set_text_props(ha="left")
                    cell._loc = "left"
                if r == 0:
                    cell.set_facecolor("#e8edf3")
        else:
            height = 0.03
            ax.text(0, 1, "(no rows)", va="top")
        if k == len(chunks) - 1:  # the caption right under the table
            fig.text(0.05, 0.1 + 0.82 * (1 - height) - 0.015, caption, fontsize=7, va="top", wrap=True)
        pdf.savefig(fig)


def render_pdf(d: dict[str, Any], out) -> None:
    """The report as a PDF (matplotlib's PdfPages): a title page, then each section."""
    figs = _figures(d)
    secs = {(t.split(".")[0] if t.startswith("Table 1") else t): (t, h, r, c) for t, h, r, c in _sections(d)}
    with PdfPages(out, metadata={"Title": f"{d['title']} – snapshot {d['snapshot']}", "Creator": "registry report"}) as pdf:
        head = [(d["title"], 20, "bold"),
                (f"Generated from snapshot {d['snapshot']}" + (f", published {d['published_at']}" if d["published_at"] else ""), 10, "bold"),
                (f"Generated {d['generated_at']}", 9, "normal"),
                (f"Cohort: {d['cohort']}: {d['n_cases']:,} of the {d['n_registry']:,} cases of the snapshot.", 10, "normal")]
        if d["n_synthetic"]:
            head.append((f"Includes synthetic cases (n={d['n_synthetic']:,}), generated for testing and demonstration.", 10, "normal"))
        if d["cox"] and d["cox"]["ph_warning"]:
            head.append(("Cox model: " + d["cox"]["ph_warning"], 8, "normal"))
        if d["cox"] is None:
            head.append((f"Cox model not computed: {d['cox_error']}", 9, "normal"))
        _text_page(pdf, head)
        order = [("Table 1", None), ("Number at risk", "km"), ("Survival (Kaplan–Meier)", None),
                 ("Cumulative incidence of death by cause", "cif"), ("Cox model of death", "forest"),
                 ("Organ involvement", "organs"), ("Baseline labs against reference ranges", None),
                 ("Wound healing by lesion distribution", None), ("Data completeness", None)]
        for key, fig in order:
            if key in secs:
                t, h, r, c = secs[key]
                _table_pages(pdf, t, h, r, c, fig_before=figs.get(fig) if fig else None)
