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
