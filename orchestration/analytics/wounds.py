"""Wound healing by lesion distribution and by treatments received (counts).

Pure: frames in, plain data out. ``wound_healing`` is the healing of the skin lesions at last
contact (complete, partial, none, not_applicable, unknown; null is read as unknown).

Percentages are of the cases of the row; ``pct_complete_of_assessed`` is complete healing among
the cases whose healing was assessed (complete, partial or none: not_applicable and unknown left
out), the figure the UK Calciphylaxis Study reports (17 %).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from orchestration.analytics import variables as V

__all__ = ["HEALING_LEVELS", "TREATMENT_CAUTION", "healing_by_lesion_distribution", "healing_by_treatment"]

HEALING_LEVELS: tuple[str, ...] = ("complete", "partial", "none", "not_applicable", "unknown")
ASSESSED: tuple[str, ...] = ("complete", "partial", "none")

TREATMENT_CAUTION = (
    "Treatments start after day 0 and are given to the cases that live long enough and are well enough to "
    "receive them (and are often chosen because a wound does not heal). Healing by treatment therefore "
    "describes who received what; it is not an estimate of a treatment's effect and treatments cannot be "
    "read as baseline risk factors."
)

NO_TREATMENT = "(no treatment recorded)"
ALL = "all"


def _row(label: str, codes: np.ndarray) -> dict[str, Any]:
    n = int(codes.size)
    row: dict[str, Any] = {"group": label, "n": n}
    for lv in HEALING_LEVELS:
        k = int((codes == lv).sum())
        row[f"n_{lv}"] = k
        row[f"pct_{lv}"] = (100.0 * k / n) if n else None
    assessed = int(np.isin(codes, ASSESSED).sum())
    row["n_assessed"] = assessed
    row["pct_complete_of_assessed"] = (100.0 * row["n_complete"] / assessed) if assessed else None
    return row


def _healing(cases: pd.DataFrame) -> np.ndarray:
    codes = V.coded(cases["wound_healing"], "wound_healing").to_numpy(dtype=object) if len(cases) else np.empty(0, object)
    # a code outside the vocabulary is shown as unknown rather than dropped
    return np.where(np.isin(codes, HEALING_LEVELS), codes, V.UNKNOWN)


def healing_by_lesion_distribution(cases: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per lesion distribution present (display order) and a last row ``all``: n, then
    ``n_<level>`` / ``pct_<level>`` for each healing level, ``n_assessed`` and
    ``pct_complete_of_assessed``."""
    heal = _healing(cases)
    dist = V.coded(cases["lesion_distribution"], "lesion_distribution").to_numpy(dtype=object) if len(cases) else heal
    rows = [_row(lv, heal[dist == lv]) for lv in V.level_order("lesion_distribution", pd.unique(dist))]
    rows.append(_row(ALL, heal))
    return rows


def healing_by_treatment(cases: pd.DataFrame, treatments: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per treatment received by at least one case of ``cases`` (most frequent first), a row
    for the cases with no treatment recorded, and ``all``. A case counts once per treatment it
    received (so the treatment rows overlap). ``treatments``: rows of ``fct_treatments``
    (case_id, treatment). Read with :data:`TREATMENT_CAUTION`."""
    heal = pd.Series(_healing(cases), index=cases["case_id"].to_numpy() if len(cases) else [], dtype=object)
    t = treatments[treatments["case_id"].isin(heal.index)][["case_id", "treatment"]].drop_duplicates()
    rows = []
    counts = t.groupby("treatment")["case_id"].nunique().sort_values(ascending=False, kind="stable")
    order = sorted(counts.index, key=lambda k: (-int(counts[k]), str(k)))
    for tr in order:
        ids = t.loc[t["treatment"] == tr, "case_id"].to_numpy()
        rows.append(_row(str(tr), heal.loc[ids].to_numpy(dtype=object)))
    untreated = ~heal.index.isin(t["case_id"].unique())
    rows.append(_row(NO_TREATMENT, heal.to_numpy(dtype=object)[untreated]))
    rows.append(_row(ALL, heal.to_numpy(dtype=object)))
    return rows
