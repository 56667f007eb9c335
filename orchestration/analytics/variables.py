"""The case-level variables the analyses use, and how an unknown value is spelled.

One table of the ``dim_cases`` columns (plus the baseline PTH and albumin the cohort reader adds
from ``fct_lab_results``) with their kind, shared by Table 1, the Cox model, the cohort filter and
the report, so a column means the same thing everywhere:

* **boolean** -- tri-state facts (true / false / null = unknown). Read as the codes ``"true"``,
  ``"false"`` and ``"unknown"`` (the spelling of ``analytics.stats.stratum_values`` and of
  ``--filter warfarin=true``).
* **categorical** -- coded text; null and the code ``unknown`` are both read as ``"unknown"``.
* **continuous** -- numbers; null is missing.

"unknown" is always its own value, never folded into "no" / false.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from orchestration.analytics.names import (  # noqa: F401 (re-exported)
    BOOLEAN,
    CATEGORICAL,
    CONTINUOUS,
    COX_COVARIATES,
    EXTRA_BASELINE_LABS,
    GROUPINGS,
    LABELS,
    ORDER,
    TABLE1_VARIABLES,
    UNKNOWN,
)


def kind(column: str) -> str:
    """``"boolean"``, ``"categorical"`` or ``"continuous"``; KeyError for any other column."""
    if column in BOOLEAN:
        return "boolean"
    if column in CATEGORICAL:
        return "categorical"
    if column in CONTINUOUS:
        return "continuous"
    raise KeyError(column)


def coded(values: pd.Series, column: str) -> pd.Series:
    """The values of a boolean or categorical column as codes (object dtype), unknown as "unknown"."""
    if kind(column) == "boolean":
        arr = values.to_numpy(dtype=object)
        known = pd.notna(arr)
        out = np.full(arr.shape[0], UNKNOWN, dtype=object)
        out[known] = np.where(arr[known].astype(bool), "true", "false")
        return pd.Series(out, index=values.index, dtype=object)
    s = values.astype(object)
    return s.where(s.notna(), UNKNOWN).astype(str)


def level_order(column: str, present: Any) -> list[str]:
    """The levels present, in display order: the column's fixed order (or true/false, or sorted),
    then any other level alphabetically, "unknown" last."""
    present = [str(v) for v in dict.fromkeys(present)]
    if kind(column) == "boolean":
        fixed: tuple[str, ...] = ("true", "false")
    else:
        fixed = ORDER.get(column, ())
    head = [v for v in fixed if v in present]
    rest = sorted(v for v in present if v not in fixed and v != UNKNOWN)
    return head + rest + ([UNKNOWN] if UNKNOWN in present else [])


def factorize(values: pd.Series, column: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a boolean or categorical column and their levels in display order
    (``level_order``): ``levels[codes[i]]`` is the code of case i as :func:`coded` reads it, e.g.
    "unknown" for null. One hashing pass (fast on a million cases)."""
    kind(column)  # KeyError for an unknown column
    raw, uniques = pd.factorize(values, use_na_sentinel=True)
    names = []
    for u in uniques:
        if isinstance(u, (bool, np.bool_)):
            names.append("true" if u else "false")
        else:
            names.append(str(u))
    names.append(UNKNOWN)  # the code of null (-1)
    raw = np.where(raw < 0, len(names) - 1, raw)
    present = np.bincount(raw, minlength=len(names)) > 0
    levels = level_order(column, [n for n, ok in zip(names, present) if ok])
    pos = {lv: i for i, lv in enumerate(levels)}
    remap = np.array([pos.get(n, -1) for n in names], dtype=np.int64)
    return remap[raw], levels
