"""The reference tables in ``seeds/reference/``: the single source of truth for vocabularies,
analytes, units and conversion factors. The Python validator and dbt both read these files."""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.config import REFERENCE_DIR

_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=8192)
def unit_key(unit: str) -> str:
    """Normalise a unit for matching: case, white space and the micro signs u/µ/μ are ignored
    (and the multiplication sign × is read as x). The SQL twin is the ``unit_key`` macro in dbt."""
    u = _SPACES.sub("", unit)
    u = u.replace("µ", "u").replace("μ", "u").replace("×", "x")
    return u.lower()


@dataclass(frozen=True)
class Unit:
    unit: str
    factor: float
    ucum: tuple[str, ...] = ()  # the UCUM codes of this unit (FHIR valueQuantity.code), case-sensitive as UCUM is


@dataclass(frozen=True)
class Analyte:
    code: str
    label: str
    loinc: str
    loinc_to_verify: bool
    canonical_unit: str
    si_unit: str
    hard_min: float
    hard_max: float
    ref_low: float | None
    ref_high: float | None
    units: tuple[Unit, ...] = field(default=())

    @functools.cached_property
    def by_key(self) -> dict[str, Unit]:
        return {unit_key(u.unit): u for u in self.units}

    @functools.cached_property
    def by_ucum(self) -> dict[str, Unit]:
        return {code: u for u in self.units for code in u.ucum}

    def accepted(self) -> str:
        return ", ".join(u.unit for u in self.units)


@dataclass(frozen=True)
class Reference:
    analytes: dict[str, Analyte]
    vocab: dict[str, tuple[str, ...]]
    groups: dict[str, dict[str, str]]

    def codes(self, vocabulary: str) -> tuple[str, ...]:
        return self.vocab[vocabulary]

    def group_of(self, vocabulary: str, code: str) -> str:
        return self.groups[vocabulary].get(code, "")


def _num(s: str) -> float | None:
    return float(s) if s.strip() != "" else None


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@functools.lru_cache(maxsize=4)
def load(reference_dir: Path = REFERENCE_DIR) -> Reference:
    units: dict[str, list[Unit]] = {}
    for row in _read(reference_dir / "analyte_units.csv"):
        ucum = tuple(c for c in (row.get("ucum") or "").split("|") if c)
        units.setdefault(row["analyte"], []).append(Unit(row["unit"], float(row["factor"]), ucum))
    analytes = {}
    for row in _read(reference_dir / "analytes.csv"):
        code = row["analyte"]
        analytes[code] = Analyte(
            code=code,
            label=row["label"],
            loinc=row["loinc"],
            loinc_to_verify=row["loinc_to_verify"] == "true",
            canonical_unit=row["canonical_unit"],
            si_unit=row["si_unit"],
            hard_min=float(row["hard_min"]),
            hard_max=float(row["hard_max"]),
            ref_low=_num(row["ref_low"]),
            ref_high=_num(row["ref_high"]),
            units=tuple(units.get(code, ())),
        )
    vocab: dict[str, list[str]] = {}
    groups: dict[str, dict[str, str]] = {}
    for row in _read(reference_dir / "vocabularies.csv"):
        vocab.setdefault(row["vocabulary"], []).append(row["code"])
        groups.setdefault(row["vocabulary"], {})[row["code"]] = row["code_group"]
    return Reference(analytes, {k: tuple(v) for k, v in vocab.items()}, groups)


@dataclass(frozen=True)
class FhirCode:
    """One row of ``seeds/reference/fhir_codes.csv``: a code (or, for system ``text``, a word of coded
    text) that the FHIR importer recognises, and the registry code it maps to."""

    kind: str
    system: str
    code: str
    match: str  # exact | prefix | word
    maps_to: str
    requires_text: tuple[str, ...]
    display: str
    to_verify: bool


@functools.lru_cache(maxsize=4)
def load_fhir_codes(reference_dir: Path = REFERENCE_DIR) -> tuple[FhirCode, ...]:
    return tuple(
        FhirCode(
            kind=row["kind"],
            system=row["system"],
            code=row["code"],
            match=row["match"],
            maps_to=row["maps_to"],
            requires_text=tuple(w for w in row["requires_text"].split("|") if w),
            display=row["display"],
            to_verify=row["to_verify"] == "true",
        )
        for row in _read(reference_dir / "fhir_codes.csv")
    )


@functools.cache
def vocabulary_labels(reference_dir: Path = REFERENCE_DIR) -> dict[str, dict[str, str]]:
    """vocabulary -> {code: readable label}, in the seed's display order."""
    out: dict[str, dict[str, str]] = {}
    rows = sorted(_read(reference_dir / "vocabularies.csv"), key=lambda r: (r["vocabulary"], int(r["sort_order"] or 0)))
    for row in rows:
        out.setdefault(row["vocabulary"], {})[row["code"]] = row["label"] or row["code"]
    return out


@dataclass(frozen=True)
class AgeBand:
    code: str
    age_min: int
    age_max: int


@functools.cache
def age_bands(reference_dir: Path = REFERENCE_DIR) -> tuple[AgeBand, ...]:
    """The age bands of ``dim_cases.age_band`` (``seeds/reference/age_bands.csv``, which dbt joins too)."""
    rows = sorted(_read(reference_dir / "age_bands.csv"), key=lambda r: int(r["sort_order"]))
    return tuple(AgeBand(r["age_band"], int(r["age_min"]), int(r["age_max"])) for r in rows)
