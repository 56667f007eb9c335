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

* **Public report** (``build_report(..., public=True, min_cell=k)``; ``registry report --public``): the
  disclosure policy of ``docs/disclosure.md`` applied with the functions of
  ``orchestration.analytics.disclosure`` (the same ones the dashboards' disclosure mode uses, no rule
  of its own): a cohort below k (or leaving out fewer than k of the registry) gives only the cohort
  definition, the snapshot and one sentence; otherwise every table is the suppressed table (cells read
  "suppressed"), Kaplan-Meier is the safe curve with safe numbers at risk, lab summaries are safe
  quantiles (no min/max), and the sections that cannot be made safe with these functions (the Cox model,
  cumulative incidence by cause) are left out with one line saying so.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from orchestration.analytics import competing_risks, cox, stats, table1, wounds
from orchestration.analytics import disclosure as dc
from orchestration.analytics import variables as V
from orchestration.analytics.errors import AnalysisError
from orchestration.config import Home
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


def km_figure(curve: pd.DataFrame, title: str = "Kaplan–Meier survival (all cases)", *, k: int | None = None,
              exact: pd.DataFrame | None = None) -> Figure:
    """Kaplan–Meier curve with its 95 % band and the number at risk under the axis. With ``k``:
    ``curve`` is the safe curve (:func:`disclosure.safe_curve`) and the numbers at risk under the axis
    are read from the ``exact`` curve through :func:`disclosure.safe_at_risk`."""
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
    if k is None:
        labels = [(d, f"{n:,}") for d, n in _at_risk(curve, ticks)]
    else:
        pairs = _at_risk(exact if exact is not None else pd.DataFrame(columns=["day", "n_at_risk"]), ticks)
        labels = [(d, dc.MARK if v is None else f"{v:,}") for (d, _), v in zip(pairs, dc.safe_at_risk([n for _, n in pairs], k))]
    for d, text in labels:
        at.text(d, 0.3, text, ha="center", fontsize=8 if k is None else 6.5)
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
                 public: bool = False, min_cell: int | None = None, home: Home | None = None) -> dict[str, Any]:
    """Every figure and table of the report for a :class:`orchestration.services.cohort.Cohort`.

    ``public=True``: the report under the disclosure policy, with the minimum cell size ``min_cell``
    when given, else the policy of ``home`` (:func:`disclosure.load_policy`; a broken policy file
    raises ValueError, never a fallback to a weaker policy). Giving ``min_cell`` alone asks for it too."""
    if min_cell is not None:
        public = True  # asking for a minimum cell size is asking for the policy
    elif public:
        if home is None:
            raise ValueError("a public report needs the minimum cell size: give min_cell or the registry home")
        min_cell = dc.load_policy(home).min_cell
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
    d = {
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
        "public": None,
    }
    return _protect(d, dc.validate_min_cell(min_cell)) if public else d


# ----------------------------------------------------------------------------- the public report


#: sections left out of a public report: their figures cannot be made safe with the policy's functions
PUBLIC_OMITTED: tuple[tuple[str, str], ...] = (
    ("Cumulative incidence of death by cause",
     "left out of the public report: the deaths by cause and their curves cannot be made safe with the disclosure functions."),
    ("Cox model of death",
     "left out of the public report: hazard ratios of small groups and the counts of cases used and excluded cannot be "
     "made safe with the disclosure functions."),
)


def _s(v: Any, hide: bool, fmt=lambda v: f"{v:,}") -> str:
    """A cell of a public table: the mark when hidden, else the formatted value."""
    return dc.MARK if hide or v is None else fmt(v)


def _refusal(n: int, n_registry: int, k: int) -> str | None:
    """One sentence when the cohort may show no figure (the dashboards' rule: fewer than k cases, or
    leaving out fewer than k of the registry's cases), else None."""
    if not dc.cohort_ok(n, k):
        return (f"Fewer than {k} cases match this cohort definition, so this report shows no figures "
                f"(disclosure control, minimum cell size k = {k}).")
    rest = n_registry - n
    if rest > 0 and not dc.cohort_ok(rest, k):
        return (f"This cohort leaves out fewer than {k} of the registry's cases, who could be singled out by comparison "
                f"with the whole registry, so this report shows no figures (minimum cell size k = {k}).")
    return None


def _public_table1(t: dict[str, Any], vocab, k: int) -> tuple[list[str], list[list[str]]]:
    """Table 1 with every level x group table suppressed (margins: the groups' sizes and the overall
    column), quartiles only for groups of at least k known values, p and SMD only when every group has
    at least k cases."""
    groups = [g["group"] for g in t["groups"] if g["group"] != table1.OVERALL]
    sizes = np.array([g["n"] for g in t["groups"] if g["group"] != table1.OVERALL], dtype=float)
    size_m = dc.suppress_counts(sizes, k) if len(groups) else np.zeros(0, dtype=bool)
    tests_ok = bool(len(groups)) and bool((sizes >= k).all())
    header = ["Characteristic"] + [
        _label(vocab, t["by"], g) + f" (n={_s(int(n), m)})" for g, n, m in zip(groups, sizes, size_m)
    ] + [f"Overall (n={t['n']:,})", "p", "Test", "SMD"]
    rows = []
    for v in t["variables"]:
        name = V.LABELS.get(v["variable"], v["variable"].replace("_", " "))
        smds = [abs(x["smd"]) for x in v["smd"] if x["smd"] is not None]
        smd = "" if not smds else (f"{smds[0]:.3f}" if len(v["smd"]) == 1 else f"max {max(smds):.3f}")
        p, test = (_fmt_p(v["p"]), v["test"] or "") if tests_ok else (dc.MARK, "")
        smd = smd if tests_ok else (dc.MARK if smd else "")
        if v["type"] == "continuous":
            summ = [v["summary"][g] for g in groups + [table1.OVERALL]]
            miss = np.array([[s["n"], s["n_missing"]] for s in summ[:-1]], dtype=float).reshape(len(groups), 2)
            if len(groups):
                cm, _, tot_m, _ = dc.suppress_table(miss, k, row_total_hidden=size_m)
            else:
                cm, tot_m = np.zeros((0, 2), dtype=bool), dc.suppress_counts([summ[-1]["n"], summ[-1]["n_missing"]], k)
            cells = []
            for i, s in enumerate(summ):
                hid_n, hid_miss = (cm[i] if i < len(groups) else tot_m)
                q_ok = not hid_n and s["n"] >= k and s["median"] is not None
                txt = (f"{_fmt_num(s['median'])} ({_fmt_num(s['q1'])}–{_fmt_num(s['q3'])})" if q_ok else dc.MARK)
                if s["n_missing"] or hid_miss:
                    txt += f" [{_s(s['n_missing'], hid_miss)} missing]"
                cells.append(txt)
            rows.append([f"{name}, {v['unit']}, median (IQR)"] + cells + [p, test, smd])
        else:
            levels = v["levels"]
            counts = np.array([[lv["counts"][g]["n"] for g in groups] for lv in levels], dtype=float).reshape(len(levels), len(groups))
            if len(groups) and len(levels):
                cm, rm, _, _ = dc.suppress_table(counts, k, col_total_hidden=size_m)
            else:
                cm = np.zeros((len(levels), 0), dtype=bool)
                rm = dc.suppress_counts([lv["counts"][table1.OVERALL]["n"] for lv in levels], k)
            rows.append([f"{name}, n (%)"] + [""] * (len(groups) + 1) + [p, test, smd])
            for i, lv in enumerate(levels):
                cells = []
                for j, g in enumerate(groups + [table1.OVERALL]):
                    c = lv["counts"][g]
                    hide = bool(cm[i, j]) if j < len(groups) else bool(rm[i])
                    cells.append(dc.MARK if hide else _fmt_n_pct(c["n"], c["percent"]))
                rows.append(["    " + _label(vocab, v["variable"], lv["level"])] + cells + ["", "", ""])
    return header, rows


def _protect(d: dict[str, Any], k: int) -> dict[str, Any]:
    """The report's data under the disclosure policy with minimum cell size ``k``: every figure and
    table replaced by its safe version (see the module's docstring); the exact figures are dropped."""
    vocab = d["vocab"]
    n, n_reg = d["n_cases"], d["n_registry"]
    exact_km = d["km"]
    out = {key: d[key] for key in ("title", "snapshot", "published_at", "generated_at", "cohort", "n_registry", "vocab")}
    out.update({"public": {"k": k, "refusal": _refusal(n, n_reg, k), "sections": [], "omitted": list(PUBLIC_OMITTED)},
                "n_cases": n, "n_synthetic": 0, "synthetic_hidden": False, "table1": None, "km": dc.safe_curve(None, k),
                "km_exact": None, "km_summary": None, "at_risk": [], "cif": pd.DataFrame(), "cif_at": [], "cox": None,
                "cox_error": None, "organs": [], "labs": [], "completeness": [], "wounds": []})
    pub = out["public"]
    if pub["refusal"]:
        pub["omitted"] = []
        return out
    syn_m = dc.suppress_counts([n - d["n_synthetic"], d["n_synthetic"]], k)
    out["n_synthetic"], out["synthetic_hidden"] = d["n_synthetic"], bool(syn_m.any()) and d["n_synthetic"] > 0
    secs = pub["sections"]
    if d["table1"]:
        h, r = _public_table1(d["table1"], vocab, k)
        secs.append(("Table 1. Baseline characteristics by " + V.LABELS.get(d["table1"]["by"], d["table1"]["by"]).lower(), h, r,
                     f"Counts (% of the group); '{dc.MARK}' marks a count of 1–{k - 1} or one from which such a count could "
                     f"be derived. Median (IQR) only for groups of at least {k} known values. p and SMD only when every "
                     f"group has at least {k} cases."))
    # Kaplan-Meier: the safe curve, safe numbers at risk, survival and median read off the safe curve
    safe = dc.safe_curve(exact_km, k)
    out["km"], out["km_exact"] = safe, exact_km
    at = _at_risk(exact_km, AT_RISK_DAYS)
    at_safe = dc.safe_at_risk([v for _, v in at], k)
    secs.append(("Number at risk", ["Day"] + [str(dd) for dd, _ in at], [["At risk"] + [_s(v, False) for v in at_safe]],
                 f"Cases with a known outcome still followed at the start of each day, rounded down to a multiple of {k}; "
                 f"'{dc.MARK}' below {k}."))
    s = d["km_summary"]
    if s:
        om = dc.suppress_counts([s["n_deaths"], s["n_known_outcome"] - s["n_deaths"], n - s["n_known_outcome"]], k)
        known_hidden = bool(om[0] or om[1]) and bool(om[2])
        cells = []
        for day in stats.SURVIVAL_DAYS:
            sv, lo, hi = dc.safe_survival_at(safe, day)
            cells.append(dc.MARK if sv is None else f"{sv:.3f} ({lo:.3f}–{hi:.3f})")
        status, med = dc.safe_median(safe)
        med_txt = str(med) if status == "reached" else ("not reached" if status == "not reached" else dc.MARK)
        secs.append(("Survival (Kaplan–Meier)", ["", "30 d", "90 d", "180 d", "365 d", "Median (days)"],
                     [["Survival (95% CI)"] + cells + [med_txt]],
                     f"{_s(s['n_known_outcome'], known_hidden)} cases with a known outcome, {_s(s['n_deaths'], bool(om[0]))} "
                     f"deaths. Read off the safe curve: steps of at least {k} deaths, stopping where fewer than {k} remain "
                     "at risk; 95% log(−log) Greenwood bands."))
    # organ involvement: each organ's count against the rest of the cohort
    orgs = []
    for r in d["organs"]:
        hide = bool(dc.suppress_counts([r["n"], n - r["n"]], k)[0])
        orgs.append({**r, "n": None if hide else r["n"], "percent": None if hide else r["percent"]})
    out["organs"] = orgs
    secs.append(("Organ involvement", ["Organ", "Group", "Cases", "%"],
                 [[r["label"], r["group"], _s(r["n"], False), _s(r["percent"], False, lambda v: f"{v:.1f}")] for r in orgs],
                 f"Cases with calcific vasculopathy of each organ (% of the cohort); '{dc.MARK}' where the organ's cases "
                 f"or the cases without it are 1–{k - 1}."))
    labs = []
    for r in d["labs"]:
        q = {**r, **dc.safe_quantiles(r, k)}
        q.pop("min", None), q.pop("max", None)
        q["n_text"] = _s(q["n"], False)
        # one value per case: the cases without one are a derived count too (the dashboards' /labs rule):
        # when they are 1 .. k-1, no size and no count or percentage that would give it back
        if r["n"] and dc.suppress_counts([r["n"], n - r["n"]], k)[0]:
            q["n_text"] = f"{dc.MARK} (≥{k})" if r["n"] >= k else dc.MARK
            q.update({"n": None, "n_low": None, "n_high": None, "pct_low": None, "pct_high": None})
        labs.append(q)
    out["labs"] = labs
    secs.append(("Baseline labs against reference ranges", ["Analyte", "Unit", "n", "Median (IQR)", "Reference", "Low", "High"],
                 [[r["label"], r["unit"], r["n_text"],
                   dc.MARK if r["median"] is None else f"{_fmt_num(r['median'], 2)} ({_fmt_num(r['p25'], 2)}–{_fmt_num(r['p75'], 2)})",
                   _ref(r), dc.MARK if r["n_low"] is None else f"{r['n_low']:,} ({_fmt_num(r['pct_low'])}%)",
                   dc.MARK if r["n_high"] is None else f"{r['n_high']:,} ({_fmt_num(r['pct_high'])}%)"] for r in labs],
                 f"Each case's earliest value; quartiles only for at least {k} values, never a minimum or maximum; "
                 f"'{dc.MARK} (≥{k})': a size hidden because the cases without a value are fewer than {k}; "
                 "low/high against the range of the record or the analyte's default (shown)."))
    # wound healing: lesion groups x healing levels, margins the groups' sizes and the 'all' row
    wrows = [r for r in d["wounds"] if r["group"] != wounds.ALL]
    if wrows:
        cells = np.array([[r[f"n_{lv}"] for lv in wounds.HEALING_LEVELS] for r in wrows], dtype=float)
        size_m = dc.suppress_counts([r["n"] for r in wrows], k)
        cm, rm, colm, _ = dc.suppress_table(cells, k, row_total_hidden=size_m)
        table = []
        for i, r in enumerate(list(wrows) + [next(x for x in d["wounds"] if x["group"] == wounds.ALL)]):
            m = cm[i] if i < len(wrows) else colm
            row_hidden = bool(rm[i]) if i < len(wrows) else False
            parts = [dc.MARK if m[j] else _fmt_n_pct(r[f"n_{lv}"], r[f"pct_{lv}"]) for j, lv in enumerate(wounds.HEALING_LEVELS)]
            assessed = [j for j, lv in enumerate(wounds.HEALING_LEVELS) if lv in wounds.ASSESSED]
            ok = not row_hidden and not any(m[j] for j in assessed) and r["pct_complete_of_assessed"] is not None
            table.append([_label(vocab, "lesion_distribution", r["group"]) if r["group"] != wounds.ALL else "All",
                          _s(r["n"], row_hidden)] + parts + [_fmt_num(r["pct_complete_of_assessed"]) + "%" if ok else dc.MARK])
        secs.append(("Wound healing by lesion distribution", ["Lesions", "n", "Complete", "Partial", "None",
                                                             "Not applicable", "Unknown", "Complete of assessed"], table,
                     "Healing at last contact; suppressed as a table with its margins. " + wounds.TREATMENT_CAUTION))
    # data completeness: each column's known values against its unknown ones (deaths: their count too)
    comp = []
    deaths_hidden = bool(s and dc.suppress_counts([s["n_deaths"], n - s["n_deaths"]], k)[0]) if s else True
    for r in d["completeness"]:
        hide = bool(dc.suppress_counts([r["known"], r["denominator"] - r["known"]], k).any())
        denom_hidden = deaths_hidden if r["column"] == "cause_of_death" else False
        comp.append([V.LABELS.get(r["column"], r["column"].replace("_", " ")) + (f" ({r['note']})" if r["note"] else ""),
                     _s(r["known"], hide or denom_hidden), _s(r["denominator"], denom_hidden),
                     dc.MARK if hide or denom_hidden else _fmt_num(r["percent"])])
    secs.append(("Data completeness", ["Column", "Known", "Of", "%"], comp,
                 f"Known = neither missing nor recorded as unknown; '{dc.MARK}' where the known or the unknown values are "
                 f"1–{k - 1}."))
    return out


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
    if d.get("public"):
        return list(d["public"]["sections"])
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
    pub = d.get("public")
    if pub:  # safe curve, safe numbers at risk, shown organs only; no competing risks, no Cox
        if pub["refusal"]:
            return {}
        figs = {"km": km_figure(d["km"], f"Kaplan–Meier survival (all cases; steps of at least {pub['k']} deaths)",
                                k=pub["k"], exact=d["km_exact"])}
        shown = [r for r in d["organs"] if r["percent"] is not None]
        if shown:
            figs["organs"] = organ_figure(shown)
        return figs
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
    ]
    pub = d.get("public")
    if pub:
        parts.append(f"<p class='warn'>{e(_policy_line(pub['k']))}</p>")
    if pub and pub["refusal"]:
        parts += [f"<p><strong>Cohort:</strong> {e(d['cohort'])}.</p>", f"<p>{e(pub['refusal'])}</p>", "</body></html>"]
        return "\n".join(parts)
    parts.append(f"<p><strong>Cohort:</strong> {e(d['cohort'])}: {d['n_cases']:,} of the {d['n_registry']:,} cases of the snapshot.</p>")
    if pub and d["synthetic_hidden"]:
        parts.append("<p class='warn'>Includes synthetic cases (how many is suppressed under the disclosure policy), "
                     "generated for testing and demonstration.</p>")
    elif d["n_synthetic"]:
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
    if pub:
        for title, why in pub["omitted"]:
            parts.append(f"<p class='warn'>{e(title)}: {e(why)}</p>")
    elif d["cox"] is None:
        parts.append(f"<h2>Cox model of death</h2><p class='warn'>Not computed: {e(d['cox_error'] or '')}</p>")
    else:
        if d["cox"]["ph_warning"]:
            parts.append(f"<p class='warn'>{e(d['cox']['ph_warning'])}</p>")
        section("Cox model of death", "forest", "Forest plot of hazard ratios")
    section("Organ involvement", "organs", "Organ involvement")
    section("Baseline labs against reference ranges")
    section("Wound healing by lesion distribution")
    section("Data completeness")
    parts.append(f"<p class='meta'>Reproduce: <code>registry report OUT.html {e(_filter_args(d['cohort']))}"
                 f"{' --public' if pub else ''}</code> on "
                 f"snapshot {e(str(d['snapshot']))}.</p></body></html>")
    return "\n".join(parts)


def _policy_line(k: int) -> str:
    return (f"This report applies the disclosure policy with k={k}: counts of 1–{k - 1}, and any count or percentage from "
            f"which one could be derived, read '{dc.MARK}'; survival is read off a curve coarsened to steps of at least {k} "
            f"deaths that stops where fewer than {k} remain at risk; no minimum or maximum is shown.")


def _filter_args(definition: str) -> str:
    if definition.startswith("All cases"):
        return ""
    return " ".join(f"--filter {p.replace(' = ', '=')}" for p in definition.split(" AND "))


# ----------------------------------------------------------------------------- PDF

_A4 = (8.27, 11.69)


def _wrap(text: str, width: int = 95) -> str:
    return textwrap.fill(text, width)


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
                (f"Generated {d['generated_at']}", 9, "normal")]
        pub = d.get("public")
        if pub:
            head.append((_wrap(_policy_line(pub["k"])), 9, "normal"))
        if pub and pub["refusal"]:
            head += [(f"Cohort: {d['cohort']}.", 10, "normal"), (_wrap(pub["refusal"]), 10, "normal")]
            _text_page(pdf, head)
            return
        head.append((f"Cohort: {d['cohort']}: {d['n_cases']:,} of the {d['n_registry']:,} cases of the snapshot.", 10, "normal"))
        if pub:
            head += [(_wrap(f"{t}: {why}"), 9, "normal") for t, why in pub["omitted"]]
        if pub and d["synthetic_hidden"]:
            head.append(("Includes synthetic cases (how many is suppressed under the disclosure policy).", 10, "normal"))
        elif d["n_synthetic"]:
            head.append((f"Includes synthetic cases (n={d['n_synthetic']:,}), generated for testing and demonstration.", 10, "normal"))
        if d["cox"] and d["cox"]["ph_warning"]:
            head.append(("Cox model: " + d["cox"]["ph_warning"], 8, "normal"))
        if d["cox"] is None and not pub:
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
