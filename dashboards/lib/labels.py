"""Readable names for columns, strata and coded values (no Streamlit here).

Coded values (``ckd``, ``mesenteric_vessels``, ...) get the labels of the published ``vocabularies``
table when one is known (:func:`value_label` with a vocabulary mapping); column names get the
hand-written labels below, and anything else falls back to :func:`pretty` (``n_known_outcome`` ->
"Known outcome (n)").
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import pandas as pd

#: Columns shown to analysts, by their warehouse name.
COLUMN_LABELS: dict[str, str] = {
    "case_id": "Case ID",
    "revision": "Revision",
    "site_id": "Site",
    "source": "Source",
    "is_synthetic": "Synthetic",
    "index_year": "Index year",
    "age_years": "Age (years)",
    "age_band": "Age band",
    "sex": "Sex",
    "kidney_status": "Kidney status",
    "dialysis_modality": "Dialysis modality",
    "dialysis_vintage_months": "Dialysis vintage (months)",
    "diabetes": "Diabetes",
    "obesity": "Obesity",
    "warfarin": "Warfarin",
    "diagnosis_basis": "Diagnosis basis",
    "lesion_distribution": "Lesion distribution",
    "visceral_involvement": "Visceral involvement",
    "organ_count": "Organs involved",
    "vital_status": "Vital status",
    "died": "Died",
    "followup_days": "Follow-up (days)",
    "cause_of_death": "Cause of death",
    "onset_day": "Onset (day)",
    "diagnosis_day": "Diagnosis (day)",
    "bmi": "BMI (kg/m²)",
    "hypertension": "Hypertension",
    "malignancy": "Malignancy",
    "autopsy": "Autopsy",
    "wound_healing": "Wound healing",
    "n_revisions": "Revisions",
    "first_submitted_at": "First submitted",
    "revision_submitted_at": "Revision submitted",
    # facts
    "analyte": "Analyte",
    "analyte_label": "Analyte",
    "loinc": "LOINC",
    "day": "Day",
    "value": "Value",
    "unit": "Unit",
    "value_reported": "Reported value",
    "unit_reported": "Reported unit",
    "ref_low": "Reference low",
    "ref_high": "Reference high",
    "reference_range": "Reference range",
    "flag": "Flag",
    "is_baseline": "Baseline",
    "lab_index": "Position in record",
    "ref_range_from_record": "Range from record",
    "organ": "Organ",
    "organ_group": "Organ group",
    "evidence": "Evidence",
    "treatment": "Treatment",
    "treatment_index": "Position in record",
    "site": "Body site",
    "site_group": "Site group",
    "laterality": "Laterality",
    "features": "Features",
    "lesion_index": "Position in record",
    # quality
    "quarantine_id": "Quarantine ID",
    "source_file": "Source file",
    "record": "Record",
    "n_errors": "Errors",
    "reasons": "Reasons",
    "first_error_path": "First error at",
    "quarantined_at": "Quarantined at",
    "channel": "Channel",
    "is_resolved": "Resolved",
    "resolved_at": "Resolved at",
    "resolution_note": "Resolution",
    "n_accepted": "Accepted",
    "n_quarantined": "Quarantined",
    "field": "Field",
    "n_known": "Known (n)",
    "pct_known": "Known (%)",
    # statistics
    "stratum": "Stratum",
    "stratum_value": "Group",
    "group": "Group",
    "n": "n",
    "n_cases": "Cases",
    "n_known_outcome": "Known outcome (n)",
    "n_deaths": "Deaths",
    "n_events": "Deaths",
    "n_at_risk": "At risk",
    "n_censored": "Censored",
    "case_fatality": "Case fatality",
    "median_survival_days": "Median survival (days)",
    "survival": "Survival",
    "ci_lower": "95% CI low",
    "ci_upper": "95% CI high",
    "mean": "Mean",
    "sd": "SD",
    "min": "Min",
    "p25": "25th pct",
    "median": "Median",
    "p75": "75th pct",
    "max": "Max",
    "iqr": "IQR",
    "n_low": "Below range (n)",
    "n_high": "Above range (n)",
    "pct_low": "Below range (%)",
    "pct_high": "Above range (%)",
    "pct": "%",
    "pct_of_cases": "% of cases",
    "pct_of_deaths": "% of deaths",
    "n_cutaneous_only": "Cutaneous only (n)",
    "n_visceral": "Visceral (n)",
    "pct_visceral": "Visceral (%)",
    "pct_cutaneous_only": "Cutaneous only (%)",
    "metric": "Measure",
    "label": "Label",
}

#: Strata an analyst can pick (column of dim_cases -> label), in menu order.
STRATA: dict[str, str] = {
    "sex": "Sex",
    "age_band": "Age band",
    "kidney_status": "Kidney status",
    "dialysis_modality": "Dialysis modality",
    "diabetes": "Diabetes",
    "obesity": "Obesity",
    "warfarin": "Warfarin",
    "visceral_involvement": "Visceral involvement",
    "lesion_distribution": "Lesion distribution",
    "diagnosis_basis": "Diagnosis basis",
    "site_id": "Site",
    "is_synthetic": "Synthetic / real",
}

#: Columns whose values are yes/no/unknown.
BOOLEAN_COLUMNS = frozenset(
    {"is_synthetic", "diabetes", "obesity", "warfarin", "visceral_involvement", "died", "hypertension", "malignancy", "autopsy",
     "is_baseline", "ref_range_from_record", "is_resolved"}
)

#: vocabularies.vocabulary for columns whose name differs from the vocabulary's.
VOCABULARY_OF_COLUMN: dict[str, str] = {"site": "lesion_site", "features": "lesion_feature"}

_WORDS = {"ci": "CI", "id": "ID", "pct": "%", "bmi": "BMI", "pth": "PTH", "loinc": "LOINC", "sd": "SD", "iqr": "IQR"}


def pretty(name: str) -> str:
    """A readable label for any column name: the known label, else a tidied version of the name."""
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    m = re.fullmatch(r"(survival|ci_lower|ci_upper)_(\d+)d", name)
    if m:
        what = {"survival": "Survival", "ci_lower": "95% CI low", "ci_upper": "95% CI high"}[m.group(1)]
        return f"{what}, {m.group(2)} days"
    if name.startswith("n_"):
        return pretty(name[2:]) + " (n)"
    words = [_WORDS.get(w, w) for w in name.split("_") if w]
    if not words:
        return name
    text = " ".join(words)
    return text[0].upper() + text[1:]


def yes_no(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "Unknown"
    if isinstance(v, str):
        return {"true": "Yes", "false": "No"}.get(v.lower(), v)
    return "Yes" if bool(v) else "No"


def value_label(column: str, value: Any, vocab: Mapping[tuple[str, str], str] | None = None) -> str:
    """A readable label for one coded value of ``column`` (``None`` reads "Unknown")."""
    if column in BOOLEAN_COLUMNS:
        return yes_no(value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "Unknown" if column not in ("dialysis_modality",) else "Not applicable / unknown"
    s = str(value)
    if column == "is_synthetic":
        return "Synthetic" if s.lower() == "true" else "Real"
    if vocab:
        hit = vocab.get((VOCABULARY_OF_COLUMN.get(column, column), s))
        if hit:
            return hit
    if column in ("site_id", "case_id", "age_band"):
        return s
    return s.replace("_", " ")[:1].upper() + s.replace("_", " ")[1:]


def stratum_value_label(column: str, value: Any, vocab: Mapping[tuple[str, str], str] | None = None) -> str:
    """Like :func:`value_label`, with ``is_synthetic`` read as real/synthetic."""
    if column == "is_synthetic":
        if value is None or value is pd.NA:
            return "Unknown"
        flag = str(value).lower() in ("true", "1") if isinstance(value, str) else bool(value)
        return "Synthetic" if flag else "Real"
    return value_label(column, value, vocab)


def fmt_pct(x: Any, digits: int = 1) -> str:
    """0.4567 -> "45.7%" (proportions in, percent out); missing -> "–"."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * float(x):.{digits}f}%"


def fmt_num(x: Any, digits: int = 0) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):,.{digits}f}"


def fmt_ci(est: Any, lo: Any, hi: Any) -> str:
    """"45.8% (95% CI 42.1–49.5%)" for proportions."""
    if est is None or (isinstance(est, float) and math.isnan(est)):
        return "–"
    if lo is None or hi is None or any(isinstance(v, float) and math.isnan(v) for v in (lo, hi)):
        return fmt_pct(est)
    return f"{fmt_pct(est)} ({100 * float(lo):.1f}–{100 * float(hi):.1f}%)"


#: dim_cases columns holding codes of a vocabulary.
CODED_COLUMNS = frozenset(
    {"source", "sex", "kidney_status", "dialysis_modality", "diagnosis_basis", "lesion_distribution", "vital_status",
     "cause_of_death", "wound_healing", "organ", "organ_group", "evidence", "treatment", "laterality", "site_group"}
)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def fact_text(column: str, value: Any, vocab: Mapping[tuple[str, str], str] | None = None) -> str:
    """One fact of a case as text: yes/no/unknown, vocabulary labels, plain numbers, ISO times."""
    if column in BOOLEAN_COLUMNS:
        return yes_no(value)
    if _missing(value):
        return "–"
    if column in CODED_COLUMNS:
        return value_label(column, value, vocab)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def range_text(lo: Any, hi: Any) -> str:
    """"8.4–10.2", "≤ 35" (no lower limit, or 0), "≥ 10", or "–"."""
    lo = None if _missing(lo) else float(lo)
    hi = None if _missing(hi) else float(hi)
    if hi is None and lo is None:
        return "–"
    if hi is None:
        return f"≥ {lo:g}"
    if lo is None or lo == 0:
        return f"≤ {hi:g}"
    return f"{lo:g}–{hi:g}"
