"""The reference tables in ``seeds/reference/``: the single source of truth for vocabularies,
analytes, units and conversion factors. The Python validator and dbt both read these files."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.config import REFERENCE_DIR

UNIT_SPELLINGS_FILE = "unit_spellings.csv"

# How a listed unit may be spelled: ASCII letters in either case; the micro signs µ (U+00B5) and
# μ (U+03BC) and u/U for one another; × and x/X for one another; "/" with or without one ASCII
# space on either side; one ASCII space before or after the whole. Nothing else: no other white space,
# no other Unicode look-alikes.
_MICRO = ("µ", "μ", "u", "U")
_TIMES = ("×", "x", "X")
_SLASH = ("/", " /", "/ ", " / ")


def spellings_of(unit: str) -> list[str]:
    """Every accepted spelling of one unit as listed in ``analyte_units.csv``."""
    options: list[tuple[str, ...]] = [("", " ")]
    for ch in unit:
        if ch in _MICRO:
            options.append(_MICRO)
        elif ch in _TIMES:
            options.append(_TIMES)
        elif ch == "/":
            options.append(_SLASH)
        elif ch.isascii() and ch.isalpha():
            options.append((ch.lower(), ch.upper()))
        else:
            options.append((ch,))
    options.append(("", " "))
    return sorted({"".join(p) for p in itertools.product(*options)})


def generate_unit_spellings(reference_dir: Path = REFERENCE_DIR) -> str:
    """The text of ``unit_spellings.csv``: every accepted spelling of every listed unit, and the
    unit as listed. The validator and dbt both match a reported unit against this table, exactly,
    so the two can never normalise differently (regenerate with
    ``python -m orchestration.contract.reference --write`` after editing ``analyte_units.csv``)."""
    listed = sorted({row["unit"] for row in _read(reference_dir / "analyte_units.csv")})
    owner: dict[str, str] = {}
    for unit in listed:
        for s in spellings_of(unit):
            if owner.setdefault(s, unit) != unit:
                raise ValueError(f"unit spelling {s!r} would mean both {owner[s]!r} and {unit!r}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["spelling", "unit"])
    for s in sorted(owner):
        w.writerow([s, owner[s]])
    return buf.getvalue()


def unit_key(unit: object) -> str | None:
    """The unit as listed in ``analyte_units.csv`` that ``unit`` spells, or None when it spells none
    (a lookup in ``seeds/reference/unit_spellings.csv``, the table dbt joins)."""
    return load().spellings.get(unit) if isinstance(unit, str) else None


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
        """The analyte's units by their listed spelling (look a reported unit up with :func:`unit_key`)."""
        return {u.unit: u for u in self.units}

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
    spellings: dict[str, str] = field(default_factory=dict)  # accepted spelling -> unit as listed

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
    spellings = {row["spelling"]: row["unit"] for row in _read(reference_dir / UNIT_SPELLINGS_FILE)}
    return Reference(analytes, {k: tuple(v) for k, v in vocab.items()}, groups, spellings)


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
if __name__ == "__main__":  # python -m orchestration.contract.reference --write
    text = generate_unit_spellings()
    if "--write" in sys.argv[1:]:
        (REFERENCE_DIR / UNIT_SPELLINGS_FILE).write_text(text, encoding="utf-8", newline="")
        print(f"wrote {REFERENCE_DIR / UNIT_SPELLINGS_FILE}", file=sys.stderr)
    else:
        sys.stdout.write(text)
