"""The flat view of a case record shared by REDCap and spreadsheets: one value per cell.

A case record is one row of *case* fields plus rows of four repeating parts (labs, organs, lesions,
treatments). :func:`case_fields` and :func:`item_fields` list every cell: its REDCap variable, its
spreadsheet column, where it goes in the record, its kind, its vocabulary and its bounds. They are
built from the typed model (:mod:`orchestration.contract.model`) and the reference tables
(``seeds/reference/``), so the REDCap dictionary and the spreadsheet template cannot drift from the
contract.

Converters are faithful, not judges: a value they cannot read (``"abc"`` for a number, an unknown
code) is put into the record as it was written, so the one validator rejects it at its JSON path and
the record is quarantined with the value kept. Problems no record field can carry (an unknown column
with a value, a row of an unknown instrument) are put in as a stray key (``~1``) that the validator
refuses, with the converter's own message. :class:`FlatConversion` maps every JSON path back to the
format's coordinates (``record 17, labs #3, lab_unit`` or ``labs!D7``).
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from annotated_types import Ge, Le
from pydantic import BaseModel

from orchestration.config import REFERENCE_DIR
from orchestration.contract import model
from orchestration.contract.model import REF

TEXT, INTEGER, NUMBER, CHOICE, YESNO, MULTI, UNIT = "text", "integer", "number", "choice", "yesno", "multi", "unit"

PARTS = ("labs", "organs", "lesions", "treatments")  # the repeating parts of a case, in record order


@dataclass(frozen=True)
class Cell:
    variable: str  # REDCap variable name
    column: str  # spreadsheet column name
    path: tuple[str, ...]  # inside the record (case fields) or inside one item (part fields)
    kind: str
    label: str
    vocabulary: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    note: str = ""
    show_if: str = ""  # REDCap branching logic
    section: str = ""
    matrix: str = ""

    @property
    def codes(self) -> tuple[str, ...]:
        if self.kind == YESNO:
            return ("1", "0", "9")
        if self.vocabulary == "analyte":
            return tuple(REF.analytes)
        return REF.codes(self.vocabulary) if self.vocabulary else ()

    def choice_labels(self) -> list[tuple[str, str]]:
        if self.kind == YESNO:
            return [("1", "Yes"), ("0", "No"), ("9", "Unknown")]
        if self.vocabulary == "analyte":
            return [(a.code, a.label) for a in REF.analytes.values()]
        return [(c, vocabulary_label(self.vocabulary, c)) for c in REF.codes(self.vocabulary)]


def vocabulary_label(vocabulary: str, code: str) -> str:
    return _labels().get((vocabulary, code), code)


@functools.cache
def _labels() -> dict[tuple[str, str], str]:
    with (REFERENCE_DIR / "vocabularies.csv").open(newline="", encoding="utf-8") as f:
        return {(row["vocabulary"], row["code"]): row["label"] for row in csv.DictReader(f)}


def _bounds(m: type[BaseModel], name: str) -> tuple[float | None, float | None]:
    lo = hi = None
    for meta in m.model_fields[name].metadata:
        if isinstance(meta, Ge):
            lo = meta.ge
        elif isinstance(meta, Le):
            hi = meta.le
    return lo, hi


def _num(m, name, variable, column, path, label, kind=INTEGER, **kw) -> Cell:
    lo, hi = _bounds(m, name)
    return Cell(variable, column, path, kind, label, minimum=lo, maximum=hi, **kw)


def _case_fields() -> tuple[Cell, ...]:
    C = model.CaseRecord
    out = [
        Cell("case_id", "case_id", ("case_id",), TEXT, "Case ID", required=True, section="Case",
             note="3-64 letters, digits, '.', '_' or '-'; stable across revisions; never a name or hospital number"),
        _num(C, "revision", "revision", "revision", ("revision",), "Revision",
             note="1 for a new case; a correction is submitted as the next revision"),
        Cell("site_id", "site_id", ("site_id",), TEXT, "Site ID", required=True,
             note="2-32 capital letters, digits, '_' or '-', e.g. DE-BER"),
        Cell("source", "source", ("source",), CHOICE, "Source of the case", "source", required=True),
        Cell("citation", "citation", ("citation",), TEXT, "Citation (published case reports)", note="at most 500 characters"),
        _num(C, "index_year", "index_year", "index_year", ("index_year",), "Year of day 0",
             note="day 0 = first presentation to the reporting centre for this illness; not after the current year"),
        _num(C, "onset_day", "onset_day", "onset_day", ("onset_day",), "Day of the first symptom",
             note="days relative to day 0: 0 or negative"),
        _num(model.Patient, "age_years", "age_years", "age_years", ("patient", "age_years"), "Age at day 0 (years)",
             required=True, section="Patient"),
        Cell("sex", "sex", ("patient", "sex"), CHOICE, "Sex", "sex", required=True),
        _num(model.Patient, "bmi", "bmi", "bmi", ("patient", "bmi"), "Body-mass index (kg/m²)", kind=NUMBER),
        Cell("kidney_status", "kidney_status", ("kidney", "status"), CHOICE, "Kidney status at day 0", "kidney_status",
             required=True, section="Kidney",
             note="dialysis = chronic dialysis for end-stage disease; emergency dialysis for AKI is a treatment"),
        Cell("dialysis_modality", "dialysis_modality", ("kidney", "dialysis_modality"), CHOICE, "Dialysis modality",
             "dialysis_modality", show_if="[kidney_status] = 'dialysis'"),
        _num(model.Kidney, "dialysis_vintage_months", "dialysis_vintage_months", "dialysis_vintage_months",
             ("kidney", "dialysis_vintage_months"), "Months on dialysis", show_if="[kidney_status] = 'dialysis'"),
    ]
    for i, code in enumerate(REF.codes("comorbidity")):
        out.append(Cell(f"comorb_{code}", f"comorb_{code}", ("comorbidities", code), YESNO,
                        vocabulary_label("comorbidity", code), section="Comorbidities (unknown is not no)" if i == 0 else "",
                        matrix="comorbidities"))
    for i, code in enumerate(REF.codes("exposure")):
        out.append(Cell(f"exposure_{code}", f"exposure_{code}", ("exposures", code), YESNO,
                        vocabulary_label("exposure", code), section="Exposures before day 0 (unknown is not no)" if i == 0 else "",
                        matrix="exposures"))
    out += [
        Cell("diagnosis_basis", "diagnosis_basis", ("diagnosis", "basis"), CHOICE, "Basis of the diagnosis",
             "diagnosis_basis", required=True, section="Diagnosis"),
        _num(model.Diagnosis, "day", "diagnosis_day", "diagnosis_day", ("diagnosis", "day"), "Day of the diagnosis"),
        Cell("vital_status", "vital_status", ("outcome", "vital_status"), CHOICE, "Vital status", "vital_status",
             required=True, section="Outcome"),
        _num(model.Outcome, "followup_days", "followup_days", "followup_days", ("outcome", "followup_days"),
             "Follow-up (days from day 0 to death or last contact)", show_if="[vital_status] <> 'unknown'",
             note="required unless the vital status is unknown"),
        Cell("cause_of_death", "cause_of_death", ("outcome", "cause_of_death"), CHOICE, "Cause of death",
             "cause_of_death", show_if="[vital_status] = 'dead'"),
        Cell("autopsy", "autopsy", ("outcome", "autopsy"), YESNO, "Autopsy performed"),
        Cell("wound_healing", "wound_healing", ("outcome", "wound_healing"), CHOICE, "Wound healing", "wound_healing"),
    ]
    return tuple(out)


def _item_fields() -> dict[str, tuple[Cell, ...]]:
    return {
        "labs": (
            Cell("lab_analyte", "analyte", ("analyte",), CHOICE, "Analyte", "analyte", required=True),
            Cell("lab_value", "value", ("value",), NUMBER, "Value (as reported)", required=True),
            Cell("lab_unit", "unit", ("unit",), UNIT, "Unit (as reported)", required=True,
                 note="must be accepted for the analyte; choose 'other spelling' to type the unit as printed"),
            Cell("lab_unit_other", "", ("unit",), TEXT, "Unit as printed on the report", show_if="[lab_unit] = 'other'"),
            _num(model.Lab, "day", "lab_day", "day", ("day",), "Day of the sample (default 0)"),
            Cell("lab_ref_low", "ref_low", ("ref_low",), NUMBER, "Reference range, low (same unit)"),
            Cell("lab_ref_high", "ref_high", ("ref_high",), NUMBER, "Reference range, high (same unit)"),
        ),
        "organs": (
            Cell("organ", "organ", ("organ",), CHOICE, "Organ with calcific vasculopathy", "organ", required=True),
            Cell("organ_evidence", "evidence", ("evidence",), CHOICE, "Evidence", "evidence"),
        ),
        "lesions": (
            Cell("lesion_site", "site", ("site",), CHOICE, "Lesion site", "lesion_site", required=True),
            Cell("lesion_laterality", "laterality", ("laterality",), CHOICE, "Laterality", "laterality"),
            Cell("lesion_features", "features", ("features",), MULTI, "Features", "lesion_feature"),
        ),
        "treatments": (
            Cell("treatment", "treatment", ("treatment",), CHOICE, "Treatment", "treatment", required=True),
            _num(model.Treatment, "day", "treatment_day", "day", ("day",), "Day the treatment started"),
        ),
    }


@functools.cache
def case_fields() -> tuple[Cell, ...]:
    """The cells of the case (one row per case), in dictionary and column order."""
    return _case_fields()


@functools.cache
def item_fields() -> dict[str, tuple[Cell, ...]]:
    """The cells of each repeating part (one row per lab, organ, lesion, treatment)."""
    return _item_fields()

# ----------------------------------------------------------------------------- units

OTHER_UNIT = "other"


def _unit_code(unit: str) -> str:
    s = unit.replace("µ", "u").replace("μ", "u").replace("%", "pct").replace("^", "e")
    s = re.sub(r"^/", "per_", s)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


@functools.cache
def unit_choices() -> tuple[tuple[str, str], ...]:
    """Every unit spelling of the reference table, once, as (code, spelling), then 'other'."""
    seen: dict[str, str] = {}
    for a in REF.analytes.values():
        for u in a.units:
            code = _unit_code(u.unit)
            if code in seen and seen[code] != u.unit:  # pragma: no cover - guarded by a test
                raise ValueError(f"two units share the code {code}: {seen[code]!r} and {u.unit!r}")
            seen.setdefault(code, u.unit)
    return (*seen.items(), (OTHER_UNIT, "other spelling (type it below)"))


def units_of(analyte: str) -> tuple[str, ...]:
    a = REF.analytes.get(analyte)
    return tuple(u.unit for u in a.units) if a else ()


# ----------------------------------------------------------------------------- values

FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
ESCAPED = re.compile(r"^'+[=+\-@\t\r]")


def escape_text(s: str) -> str:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe (reversible)."""
    return "'" + s if FORMULA_START.match(s) else s


def unescape_text(s: str) -> str:
    return s[1:] if ESCAPED.match(s) else s


def format_number(v: Any) -> str:
    """A number as text that reads back as the same number and type (9.0 stays a decimal)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    s = repr(float(v))
    if "e" in s or "E" in s:
        s = format(Decimal(s), "f")
        if "." not in s:
            s += ".0"
    return s


_INT = re.compile(r"^[+-]?\d+$")


def parse_number(s: str, kind: str) -> Any:
    """Text to a number; text that is no number is returned as is (the validator names it)."""
    t = s.strip()
    if _INT.match(t):
        return int(t)
    try:
        v = float(t)
    except ValueError:
        return s
    if not math.isfinite(v):
        return s
    if kind == INTEGER and v.is_integer():
        return int(v)
    return v


_DATE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?)?\s*$")
DATE_MESSAGE = "is a calendar date: not accepted (give a whole number of days relative to day 0; only the year of day 0 is kept)"


def is_calendar_date(s: str) -> bool:
    """A whole cell that is a calendar date (2024-03-07, 07/03/2024, 7.3.24): never lands, not even in quarantine."""
    return bool(_DATE.match(s))


# ----------------------------------------------------------------------------- conversion result

# The value of a column that is not part of the contract is not kept, not even in quarantine: such
# columns are where identifiers (a name, a hospital number) hide.
WITHHELD = "(value of an unknown column: not kept)"


@dataclass
class FlatConversion:
    """One contract-v1 record built from a format, with the way back to the format's coordinates."""

    where: str  # the record in the format's words: "record 17" or "cases!5"
    record: dict[str, Any]
    locate: Callable[[str], str]  # JSON path -> format coordinate
    messages: dict[str, str] = field(default_factory=dict)  # JSON path -> converter's own message
    only_own_errors: bool = False  # report only the converter's messages (e.g. an orphan row)
    _stray: int = 0

    def problem(self, coordinate_path: str | None, message: str, value: Any = True) -> None:
        """A problem no record field can carry: a stray key the validator refuses, with our message."""
        self._stray += 1
        key = f"~{self._stray}"
        self.record[key] = value
        self.messages[key] = message
        if coordinate_path is not None:
            self.messages[key + "@"] = coordinate_path

    def map_error(self, path: str, message: str) -> tuple[str, str]:
        if path in self.messages:
            where = self.messages.get(path + "@") or self.locate(path)
            return where, self.messages[path]
        return self.locate(path), message


def set_path(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj.setdefault(p, {})
    obj[path[-1]] = value


def get_path(obj: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    for p in path[:-1]:
        obj = obj.get(p) if isinstance(obj, dict) else None
        if not isinstance(obj, dict):
            return False, None
    if path[-1] in obj:
        return True, obj[path[-1]]
    return False, None


_PATH = re.compile(r"^(?P<top>[A-Za-z_~0-9]+)(?:\[(?P<index>\d+)\])?(?:\.(?P<rest>.*))?$")

@functools.cache
def _by_path() -> dict[tuple[str, ...], Cell]:
    return {c.path: c for c in case_fields()}


def split_path(path: str) -> tuple[str, int | None, str | None]:
    """``labs[2].unit`` -> ("labs", 2, "unit"); ``patient.age_years`` -> ("patient", None, "age_years")."""
    m = _PATH.match(path)
    if not m:
        return path, None, None
    return m.group("top"), int(m.group("index")) if m.group("index") is not None else None, m.group("rest")


def case_cell(path: str) -> Cell | None:
    top, _, rest = split_path(path)
    parts = (top, *(rest.split(".") if rest else ()))
    while parts:
        if parts in _by_path():
            return _by_path()[parts]
        parts = parts[:-1]
    return None


def item_cell(part: str, rest: str | None, *, variable_for_unit: str | None = None) -> Cell | None:
    if not rest:
        return None
    leaf = re.split(r"[.\[]", rest, maxsplit=1)[0]
    for c in item_fields().get(part, ()):
        if c.path[0] == leaf and (leaf != "unit" or variable_for_unit is None or c.variable == variable_for_unit):
            return c
    return None
