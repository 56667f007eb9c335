"""The analysis cohort, read from the published snapshot, with ``--filter COLUMN=CODE`` semantics.

A filter restricts ``dim_cases`` on one whitelisted column and one coded value; repeated filters
combine with AND (as the dashboards' cohort filter does). Columns and values are checked against
the registry's vocabularies (``orchestration.contract.reference``) before any SQL is built, the
column name in the SQL is always our own constant (never the user's text) and the value is a
bound parameter.

Values:

* yes/no facts (diabetes, obesity, warfarin, hypertension, malignancy, visceral_involvement,
  autopsy, is_synthetic, died): ``true``, ``false`` or ``unknown`` (null);
* coded columns (sex, age_band, kidney_status, dialysis_modality, lesion_distribution,
  diagnosis_basis, vital_status, cause_of_death, wound_healing, source): a code of the column's
  vocabulary; ``unknown`` matches the code ``unknown`` and null alike (as Table 1 counts them);
* ``site_id``: a site code present in the snapshot; ``index_year``: a year (integer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pandas as pd

from orchestration.analytics import variables as V
from orchestration.config import Home
from orchestration.contract import reference
from orchestration.warehouse import snapshot

__all__ = ["Cohort", "CohortError", "Filter", "FILTER_COLUMNS", "load_cohort", "parse_filters", "read_cases",
           "read_labs", "read_organs", "read_treatments", "read_vocabulary", "snapshot_info", "where_clause"]


class CohortError(ValueError):
    """A filter the registry cannot apply (one line, for the user)."""


_BOOLEAN_FILTERS = tuple(c for c in V.BOOLEAN)
#: Coded column -> its vocabulary in seeds/reference/vocabularies.csv.
_VOCAB_FILTERS: dict[str, str] = {
    "sex": "sex",
    "age_band": "age_band",
    "kidney_status": "kidney_status",
    "dialysis_modality": "dialysis_modality",
    "lesion_distribution": "lesion_distribution",
    "diagnosis_basis": "diagnosis_basis",
    "vital_status": "vital_status",
    "cause_of_death": "cause_of_death",
    "wound_healing": "wound_healing",
    "source": "source",
}
FILTER_COLUMNS: tuple[str, ...] = tuple(sorted((*_BOOLEAN_FILTERS, *_VOCAB_FILTERS, "site_id", "index_year")))


@dataclass(frozen=True)
class Filter:
    column: str  # one of FILTER_COLUMNS (never user text once parsed)
    value: str

    def __str__(self) -> str:
        return f"{self.column}={self.value}"


def parse_filters(items: Sequence[str] | None) -> list[Filter]:
    """``["kidney_status=dialysis", "warfarin=true"]`` -> filters; CohortError on anything else.
    Site codes are checked later, against the snapshot (:func:`where_clause`)."""
    out: list[Filter] = []
    vocab = reference.load().vocab
    for raw in items or ():
        text = str(raw)
        if "=" not in text:
            raise CohortError(f"--filter {_shown(text)}: expected COLUMN=CODE, e.g. kidney_status=dialysis")
        col, _, value = text.partition("=")
        col, value = col.strip().lower(), value.strip()
        if col not in FILTER_COLUMNS:
            raise CohortError(f"--filter: unknown column {_shown(col)} (filterable: {', '.join(FILTER_COLUMNS)})")
        if col in _BOOLEAN_FILTERS:
            v = value.lower()
            if v not in ("true", "false", V.UNKNOWN):
                raise CohortError(f"--filter {col}: unknown value {_shown(value)} (use true, false or unknown)")
            value = v
        elif col in _VOCAB_FILTERS:
            codes = vocab.get(_VOCAB_FILTERS[col], ())
            allowed = list(codes) + ([V.UNKNOWN] if V.UNKNOWN not in codes else [])
            match = next((c for c in allowed if c.lower() == value.lower()), None)
            if match is None:
                raise CohortError(f"--filter {col}: unknown value {_shown(value)} (codes: {', '.join(allowed)})")
            value = match
        elif col == "index_year":
            try:
                value = str(int(value))
            except ValueError:
                raise CohortError(f"--filter index_year: {_shown(value)} is not a year") from None
        elif not value:
            raise CohortError(f"--filter {col}: empty value")
        out.append(Filter(col, value))
    return out


def _shown(text: str) -> str:
    """User text for a one-line message: quoted, control characters escaped, shortened."""
    s = repr(str(text)[:60])
    return s


def where_clause(con: duckdb.DuckDBPyConnection, filters: Sequence[Filter], alias: str = "d") -> tuple[str, list[Any]]:
    """A parameterised ``WHERE`` condition over ``dim_cases`` (aliased ``alias``) for ``filters``."""
    p = f"{alias}." if alias else ""
    conds: list[str] = []
    params: list[Any] = []
    for f in filters:
        if f.column not in FILTER_COLUMNS:  # parse_filters guarantees it; never build SQL from anything else
            raise CohortError(f"--filter: unknown column {_shown(f.column)}")
        col = p + f.column
        if f.column in _BOOLEAN_FILTERS:
            conds.append(f"{col} IS NULL" if f.value == V.UNKNOWN else f"{col} IS {'TRUE' if f.value == 'true' else 'FALSE'}")
        elif f.column == "index_year":
            conds.append(f"{col} = ?")
            params.append(int(f.value))
        elif f.value == V.UNKNOWN:
            conds.append(f"({col} IS NULL OR {col} = ?)")
            params.append(V.UNKNOWN)
        else:
            if f.column == "site_id":
                known = con.execute("SELECT count(*) FROM dim_cases WHERE site_id = ?", [f.value]).fetchone()[0]
                if not known:
                    raise CohortError(f"--filter site_id: unknown value {_shown(f.value)} (no case of the snapshot has it)")
            conds.append(f"{col} = ?")
            params.append(f.value)
    return (" AND ".join(conds) if conds else "TRUE"), params


def describe(filters: Sequence[Filter]) -> str:
    """The cohort definition in words: "all cases of the snapshot" or "kidney_status = dialysis AND ..."."""
    if not filters:
        return "All cases of the snapshot (synthetic cases included)"
    return " AND ".join(f"{f.column} = {f.value}" for f in filters)


_LAB_COLUMNS = ", ".join(f"max(value) FILTER (WHERE analyte = '{a}') AS {c}" for c, a in V.EXTRA_BASELINE_LABS.items())
_LAB_ANALYTES = ", ".join(f"'{a}'" for a in V.EXTRA_BASELINE_LABS.values())


def read_cases(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: Sequence[Any] = ()) -> pd.DataFrame:
    """The ``dim_cases`` rows matching ``where`` (over alias ``d``), with the baseline PTH and albumin
    (``baseline_pth``, ``baseline_albumin``) of ``fct_lab_results``, ordered by case_id."""
    sql = f"""
        WITH labs AS (
            SELECT case_id, {_LAB_COLUMNS}
            FROM fct_lab_results
            WHERE is_baseline AND analyte IN ({_LAB_ANALYTES})
            GROUP BY case_id
        )
        SELECT d.*, labs.* EXCLUDE (case_id)
        FROM dim_cases d LEFT JOIN labs USING (case_id)
        WHERE {where}
        ORDER BY d.case_id
    """
    return con.execute(sql, list(params)).df()


def read_treatments(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: Sequence[Any] = ()) -> pd.DataFrame:
    sql = f"""SELECT t.case_id, t.treatment, t.day FROM fct_treatments t
              WHERE t.case_id IN (SELECT d.case_id FROM dim_cases d WHERE {where}) ORDER BY t.case_id, t.treatment_index"""
    return con.execute(sql, list(params)).df()


def read_labs(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: Sequence[Any] = ()) -> pd.DataFrame:
    """Baseline ``fct_lab_results`` rows of the cohort (for lab distributions against reference ranges)."""
    sql = f"""SELECT l.case_id, l.analyte, l.value, l.unit, l.ref_low, l.ref_high, l.is_baseline FROM fct_lab_results l
              WHERE l.is_baseline AND l.case_id IN (SELECT d.case_id FROM dim_cases d WHERE {where})"""
    return con.execute(sql, list(params)).df()


def read_organs(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: Sequence[Any] = ()) -> pd.DataFrame:
    """``fct_organ_involvement`` rows (case_id, organ, organ_group) of the cohort."""
    sql = f"""SELECT o.case_id, o.organ, o.organ_group FROM fct_organ_involvement o
              WHERE o.case_id IN (SELECT d.case_id FROM dim_cases d WHERE {where})"""
    return con.execute(sql, list(params)).df()


def read_vocabulary(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(vocabulary, code) -> label, from the snapshot's ``vocabularies`` seed."""
    return {(v, c): lab for v, c, lab in con.execute("SELECT vocabulary, code, label FROM vocabularies").fetchall()}


def snapshot_info(home: Home) -> dict[str, Any]:
    """``{"version", "published_at", "directory"}`` of the current snapshot (NoSnapshot if none)."""
    vdir = snapshot.current_version_dir(home)
    try:
        meta = json.loads((Path(vdir) / "snapshot.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return {"version": meta.get("version") or Path(vdir).name, "published_at": meta.get("published_at"),
            "directory": str(vdir)}


@dataclass
class Cohort:
    cases: pd.DataFrame
    filters: list[Filter]
    version: str
    published_at: str | None
    treatments: pd.DataFrame | None = None
    labs: pd.DataFrame | None = None
    organs: pd.DataFrame | None = None
    vocabulary: dict[tuple[str, str], str] = field(default_factory=dict)
    n_registry: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def definition(self) -> str:
        return describe(self.filters)


def load_cohort(home: Home, filters: Sequence[str] | Sequence[Filter] | None = None, *, treatments: bool = False,
                labs: bool = False, organs: bool = False) -> Cohort:
    """The cohort of the current snapshot matching ``filters`` (strings ``COLUMN=CODE`` or parsed).
    Raises CohortError for a bad filter, ``snapshot.NoSnapshot`` when nothing is published."""
    parsed = [f if isinstance(f, Filter) else None for f in (filters or ())]
    if any(p is None for p in parsed):
        parsed = parse_filters([str(f) for f in (filters or ())])
    info = snapshot_info(home)
    con = snapshot.connect(home, database=Path(info["directory"]) / snapshot.DB_NAME)
    try:
        where, params = where_clause(con, parsed)
        cases = read_cases(con, where, params)
        n_registry = int(con.execute("SELECT count(*) FROM dim_cases").fetchone()[0])
        tr = read_treatments(con, where, params) if treatments else None
        lb = read_labs(con, where, params) if labs else None
        og = read_organs(con, where, params) if organs else None
        vocab = read_vocabulary(con) if organs else {}
    finally:
        con.close()
    return Cohort(cases=cases, filters=list(parsed), version=info["version"], published_at=info["published_at"],
                  treatments=tr, labs=lb, organs=og, vocabulary=vocab, n_registry=n_registry)
