"""The typed model of case record v1 (``shared/docs/case-record-v1.md``).

Vocabularies are read from ``seeds/reference/vocabularies.csv`` and analytes from
``seeds/reference/analytes.csv``, so the model, the committed JSON Schema and dbt share one source.
Structure, types, vocabularies and ranges are checked here (pydantic-core, in Rust, in strict
mode: a boolean is never a number, NaN and Infinity are refused). A whole-number float such as ``40.0``
is an integer, as in JSON Schema: :func:`orchestration.contract.validate.validate_record` reads it as
one (:func:`whole_number`) before the model sees it.
Rules that relate fields to one another, or units to analytes, live in :mod:`.validate`.
"""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestration.contract.reference import load

REF = load()

# Bounds the contract leaves open but the warehouse needs (a day 10^30 would overflow it):
MAX_ABS_DAY = 36_500  # a century either side of day 0
MAX_INT = 2_147_483_647


def whole_number(v: Any) -> Any:
    """A float with no fraction (``40.0``, ``1e2``, ``-0.0``) as the int it is: JSON Schema (draft
    2020-12) counts it as an integer, and the contract agrees. Anything else is left to the type check."""
    if type(v) is float and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def _is_int_type(tp: Any) -> bool:
    if tp is int:
        return True
    if typing.get_origin(tp) is Literal:
        return all(type(a) is int for a in typing.get_args(tp))
    if typing.get_origin(tp) is typing.Union:
        return any(_is_int_type(a) for a in typing.get_args(tp))
    return False


@functools.cache
def int_field_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` that hold an integer (``int``, ``Optional[int]``, an integer literal)."""
    return tuple(name for name, f in model.model_fields.items() if _is_int_type(f.annotation))


def _enum(vocabulary: str):
    return Literal[REF.codes(vocabulary)]  # type: ignore[valid-type]


Day = Optional[int]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Patient(_Strict):
    age_years: int = Field(ge=0, le=120, description="Age at day 0 in whole years; published as 90 for any age of 90 or more.")
    sex: _enum("sex")  # type: ignore[valid-type]
    bmi: Optional[float] = Field(default=None, ge=10, le=90, description="Body-mass index, kg/m².")


class Kidney(_Strict):
    status: _enum("kidney_status") = Field(  # type: ignore[valid-type]
        description="dialysis = chronic dialysis for end-stage disease; emergency dialysis for AKI is a treatment."
    )
    dialysis_modality: Optional[_enum("dialysis_modality")] = Field(default=None, description="Only when status is dialysis.")  # type: ignore[valid-type]
    dialysis_vintage_months: Optional[int] = Field(default=None, ge=0, le=1200, description="Only when status is dialysis.")


# Tri-state maps: true, false, or null/absent = unknown.
Comorbidities = create_model(
    "Comorbidities",
    __base__=_Strict,
    **{code: (Optional[bool], None) for code in REF.codes("comorbidity")},
)
Exposures = create_model(
    "Exposures",
    __base__=_Strict,
    **{code: (Optional[bool], None) for code in REF.codes("exposure")},
)


class Diagnosis(_Strict):
    basis: _enum("diagnosis_basis")  # type: ignore[valid-type]
    day: Day = Field(default=None, ge=-MAX_ABS_DAY, le=MAX_ABS_DAY)


class Lesion(_Strict):
    site: _enum("lesion_site")  # type: ignore[valid-type]
    laterality: Optional[_enum("laterality")] = None  # type: ignore[valid-type]
    features: Optional[list[_enum("lesion_feature")]] = None  # type: ignore[valid-type]


class Organ(_Strict):
    organ: _enum("organ")  # type: ignore[valid-type]
    evidence: Optional[_enum("evidence")] = None  # type: ignore[valid-type]


class Lab(_Strict):
    analyte: Literal[tuple(REF.analytes)]  # type: ignore[valid-type]
    value: float = Field(description="As reported by the laboratory, in `unit`.")
    unit: str = Field(min_length=1, max_length=32, description="As reported; must be accepted for the analyte.")
    day: int = Field(default=0, ge=-MAX_ABS_DAY, le=MAX_ABS_DAY)
    ref_low: Optional[float] = Field(default=None, description="Reference range lower limit, in `unit`.")
    ref_high: Optional[float] = Field(default=None, description="Reference range upper limit, in `unit`.")


class Treatment(_Strict):
    treatment: _enum("treatment")  # type: ignore[valid-type]
    day: Day = Field(default=None, ge=-MAX_ABS_DAY, le=MAX_ABS_DAY)


class Outcome(_Strict):
    vital_status: _enum("vital_status")  # type: ignore[valid-type]
    followup_days: Optional[int] = Field(default=None, ge=0, le=MAX_ABS_DAY, description="Day 0 to death or last contact; required unless vital status is unknown.")
    cause_of_death: Optional[_enum("cause_of_death")] = Field(default=None, description="Only when dead.")  # type: ignore[valid-type]
    autopsy: Optional[bool] = None
    wound_healing: Optional[_enum("wound_healing")] = None  # type: ignore[valid-type]


class CaseRecord(_Strict):
    """One case of calciphylaxis, de-identified by construction: no names, record numbers,
    addresses or calendar dates other than a year; every time is a day relative to day 0."""

    model_config = ConfigDict(title="Calciphylaxis case record, version 1")

    schema_version: Literal[1]
    case_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$", description="Stable across revisions.")
    revision: int = Field(default=1, ge=1, le=MAX_INT)
    site_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
    source: _enum("source")  # type: ignore[valid-type]
    citation: Optional[str] = Field(default=None, max_length=500)
    index_year: Optional[int] = Field(default=None, ge=1950, description="Calendar year of day 0; not after the current year.")
    onset_day: Optional[int] = Field(default=None, le=0, ge=-MAX_ABS_DAY, description="First symptom, relative to day 0.")
    patient: Patient
    kidney: Kidney
    comorbidities: Optional[Comorbidities] = None  # type: ignore[valid-type]
    exposures: Optional[Exposures] = Field(default=None, description="Before day 0.")  # type: ignore[valid-type]
    diagnosis: Diagnosis
    lesions: Optional[list[Lesion]] = None
    organs: list[Organ] = Field(min_length=1, description="Organs with calcific vasculopathy; no organ twice.")
    labs: Optional[list[Lab]] = None
    treatments: Optional[list[Treatment]] = None
    outcome: Outcome
