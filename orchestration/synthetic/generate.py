"""A deterministic synthetic calciphylaxis cohort: ``registry generate --cases N --seed S OUT.jsonl``.

Every record is a valid case record v1 (``shared/docs/case-record-v1.md``) with
``source: "synthetic"``, ``revision: 1``, ``case_id`` ``SYN-<seed>-<0000001>`` and no citation. The
headline figures follow published cohorts; the targets are read from
``seeds/reference/synthetic_calibration.csv`` (which carries the full citations):

* German Calciphylaxis Registry 2006-2015 -- Brandenburg VM et al., Nephrol Dial Transplant
  2017;32:126-132, PMID 26908770: median age 70, 60 % female, 86 % on chronic dialysis, 52 %
  exposed to a vitamin K antagonist (``exposures.warfarin``), lesions on the legs or buttocks in
  71 %, median serum calcium 2.20 mmol/L, phosphate 1.67 mmol/L, intact PTH 147 pg/mL.
* UK Calciphylaxis Study -- Chinnadurai R et al., J Nephrol 2021, PMC8494680: 54 % diabetic.
* Mayo Clinic 1999-2005 -- Weenig RH et al., J Am Acad Dermatol 2007;56:569-579, PMID 17141359:
  1-year survival 45.8 % (death times are Weibull with S(365) = 0.458 before censoring).

Everything else -- the sites, their unit habits, the spread of each distribution, the other
comorbidities, exposures, treatments and organs -- is plausible invention, not calibration. Lab
values are drawn in canonical units (clipped to the hard limits of ``seeds/reference/analytes.csv``)
and then reported as the site's laboratory would report them (``mmol/L``, ``mg/dL``, ``MG/DL``,
``µmol/L``, ``umol/L``, ``pmol/L``, ...), using the factors of ``seeds/reference/analyte_units.csv``;
so the *canonical* value, not the reported one, follows the calibrated distribution.

Determinism: cases are drawn in fixed blocks of :data:`CHUNK_SIZE`; block ``c`` of seed ``s`` uses its
own generator seeded by ``SeedSequence([s, c])`` and always draws a full block. Hence the same
``n`` and ``seed`` give a byte-identical file, and the first ``k`` cases of a cohort of ``n`` are the
cohort of ``k``. The random draws are vectorised with numpy per block; only the final assembly of
each record's dict is plain Python.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from statistics import NormalDist
from typing import Any, Iterator

import numpy as np
import orjson

from orchestration.config import REFERENCE_DIR
from orchestration.contract.reference import Analyte, load, unit_key

__all__ = ["CHUNK_SIZE", "SITES", "calibration", "generate_records", "write_jsonl"]

#: Cases per independently seeded block. Changing it changes every cohort: it is part of the format.
CHUNK_SIZE = 50_000

CALIBRATION_CSV = REFERENCE_DIR / "synthetic_calibration.csv"

REF = load()


def calibration(path: Path = CALIBRATION_CSV) -> dict[str, float]:
    """The published targets, ``parameter -> target`` (units as in the CSV)."""
    with path.open(newline="", encoding="utf-8") as f:
        return {row["parameter"]: float(row["target"]) for row in csv.DictReader(f)}


CAL = calibration()


def _factor(analyte: str, unit: str) -> float:
    return REF.analytes[analyte].by_key[unit_key(unit)].factor


# ----------------------------------------------------------------------------- sites and units

# Unit habits: for each analyte, the spellings a laboratory uses, with a weight and the number of
# decimals it reports (negative: rounded to tens, hundreds, ...). Every spelling must be accepted
# for its analyte (checked at import).
_Habit = dict[str, tuple[tuple[str, float, int], ...]]

_SI_BASE: _Habit = {
    "calcium": (("mmol/L", 0.85, 2), ("mmol/l", 0.15, 2)),
    "phosphate": (("mmol/L", 0.85, 2), ("mmol/l", 0.15, 2)),
    "pth_intact": (("pg/mL", 0.70, 0), ("ng/L", 0.15, 0), ("pmol/L", 0.15, 1)),
    "albumin": (("g/L", 0.90, 0), ("g/l", 0.10, 0)),
    "creatinine": (("µmol/L", 0.60, 0), ("umol/L", 0.30, 0), ("μmol/L", 0.10, 0)),
    "alkaline_phosphatase": (("U/L", 1.0, 0),),
    "vitamin_d_25oh": (("nmol/L", 0.70, 0), ("ng/mL", 0.30, 1)),
    "hematocrit": (("%", 0.60, 0), ("L/L", 0.40, 2)),
    "wbc": (("10^9/L", 0.50, 1), ("10^3/µL", 0.50, 1)),
    "platelets": (("10^9/L", 0.50, 0), ("10^3/µL", 0.50, 0)),
}
_US_BASE: _Habit = {
    "calcium": (("mg/dL", 0.80, 1), ("mg/dl", 0.12, 1), ("MG/DL", 0.08, 1)),
    "phosphate": (("mg/dL", 0.80, 1), ("mg/dl", 0.12, 1), ("MG/DL", 0.08, 1)),
    "pth_intact": (("pg/mL", 0.90, 0), ("pg/ml", 0.10, 0)),
    "albumin": (("g/dL", 0.90, 1), ("g/dl", 0.10, 1)),
    "creatinine": (("mg/dL", 0.85, 2), ("mg/dl", 0.15, 2)),
    "alkaline_phosphatase": (("U/L", 1.0, 0),),
    "vitamin_d_25oh": (("ng/mL", 0.90, 0), ("ng/ml", 0.10, 0)),
    "hematocrit": (("%", 1.0, 1),),
    "wbc": (("K/uL", 0.40, 1), ("10^3/µL", 0.40, 1), ("/mm3", 0.20, -2)),
    "platelets": (("K/uL", 0.50, 0), ("10^3/µL", 0.30, 0), ("/mm3", 0.20, -3)),
}
_UNIT_HABITS: dict[str, _Habit] = {
    "de": _SI_BASE,
    "eu": {**_SI_BASE, "pth_intact": (("pg/mL", 0.60, 0), ("pmol/L", 0.40, 1))},
    "uk": {
        **_SI_BASE,
        "pth_intact": (("pmol/L", 0.85, 1), ("pg/mL", 0.15, 0)),
        "creatinine": (("umol/L", 0.70, 0), ("µmol/L", 0.30, 0)),
        "hematocrit": (("L/L", 0.70, 2), ("%", 0.30, 0)),
        "wbc": (("x10^9/L", 0.60, 1), ("10^9/L", 0.40, 1)),
        "platelets": (("x10^9/L", 0.60, 0), ("10^9/L", 0.40, 0)),
    },
    "se": {
        **_SI_BASE,
        "pth_intact": (("pmol/L", 0.90, 1), ("ng/L", 0.10, 0)),
        "alkaline_phosphatase": (("µkat/L", 0.80, 2), ("ukat/L", 0.20, 2)),
        "hematocrit": (("L/L", 1.0, 2),),
    },
    "us": _US_BASE,
    "kr": {
        **_US_BASE,
        "calcium": (("mg/dL", 0.90, 1), ("mg/dl", 0.10, 1)),
        "phosphate": (("mg/dL", 0.90, 1), ("mg/dl", 0.10, 1)),
        "wbc": (("10^3/µL", 1.0, 2),),
        "platelets": (("10^3/µL", 1.0, 0),),
    },
}


@dataclass(frozen=True)
class Site:
    site_id: str
    weight: float  # relative share of cases
    habit: str  # key of the unit habits


SITES: tuple[Site, ...] = (
    Site("DE-AAC", 10, "de"),
    Site("DE-BER", 8, "de"),
    Site("DE-MUC", 7, "de"),
    Site("DE-HAM", 6, "de"),
    Site("DE-KOE", 5, "de"),
    Site("UK-LON", 8, "uk"),
    Site("UK-MAN", 5, "uk"),
    Site("UK-BHM", 4, "uk"),
    Site("NL-AMS", 4, "eu"),
    Site("FR-PAR", 4, "eu"),
    Site("SE-STO", 3, "se"),
    Site("US-MN", 9, "us"),
    Site("US-BOS", 8, "us"),
    Site("US-NYC", 6, "us"),
    Site("KR-SEL", 5, "kr"),
)


def _grid(k: int, decimals: int) -> float:
    """``k`` steps of the reporting grid, computed exactly as :func:`_round_to` does."""
    return k / 10.0**decimals if decimals >= 0 else k * 10.0 ** (-decimals)


def _round_to(x: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """Round each value to its own number of decimals (negative: to tens, hundreds, ...)."""
    up = 10.0 ** np.maximum(decimals, 0)
    down = 10.0 ** np.maximum(-decimals, 0)
    return np.where(decimals >= 0, np.round(x * up) / up, np.round(x / down) * down)


@dataclass(frozen=True)
class _UnitTable:
    """How each site reports one analyte, as (site, option) arrays for vectorised choice."""

    cum: np.ndarray  # (S, K) cumulative weights; padding is 1.0 and never chosen
    factor: np.ndarray  # (S, K) reported -> canonical
    decimals: np.ndarray  # (S, K)
    low: np.ndarray  # (S, K) smallest reportable value within the hard limits
    high: np.ndarray  # (S, K) largest
    spelling: tuple[str, ...]  # flat, index site * K + option
    ref_low: tuple[Any, ...]  # default reference range in the reported unit, flat
    ref_high: tuple[Any, ...]
    width: int  # K


def _as_reported(v: float, decimals: int) -> float | int:
    return int(v) if decimals <= 0 else v


def _unit_table(analyte: Analyte) -> _UnitTable:
    options = [_UNIT_HABITS[s.habit][analyte.code] for s in SITES]
    width = max(len(o) for o in options)
    shape = (len(SITES), width)
    cum, factor = np.ones(shape), np.ones(shape)
    decimals = np.zeros(shape, dtype=np.int64)
    low, high = np.zeros(shape), np.zeros(shape)
    spelling, ref_low, ref_high = [""] * (shape[0] * width), [None] * (shape[0] * width), [None] * (shape[0] * width)
    for s, opts in enumerate(options):
        total = sum(w for _, w, _ in opts)
        acc = 0.0
        for k, (unit, w, dec) in enumerate(opts):
            u = analyte.by_key.get(unit_key(unit))
            if u is None:
                raise ValueError(f"unit habit {unit!r} is not accepted for {analyte.code}")
            acc += w / total
            cum[s, k] = acc if k < len(opts) - 1 else 1.0
            factor[s, k], decimals[s, k] = u.factor, dec
            scale = 10.0**dec
            lo = math.ceil(analyte.hard_min / u.factor * scale)
            while _grid(lo, dec) * u.factor < analyte.hard_min:
                lo += 1
            hi = math.floor(analyte.hard_max / u.factor * scale)
            while _grid(hi, dec) * u.factor > analyte.hard_max:
                hi -= 1
            low[s, k], high[s, k] = _grid(lo, dec), _grid(hi, dec)
            flat = s * width + k
            spelling[flat] = unit
            if analyte.ref_low is not None:
                ref_low[flat] = _as_reported(_grid(round(analyte.ref_low / u.factor * scale), dec), dec)
            if analyte.ref_high is not None:
                ref_high[flat] = _as_reported(_grid(round(analyte.ref_high / u.factor * scale), dec), dec)
    return _UnitTable(cum, factor, decimals, low, high, tuple(spelling), tuple(ref_low), tuple(ref_high), width)


# Baseline labs (day 0): analyte and the share of cases with a value.
_BASELINE_LABS: tuple[tuple[str, float], ...] = (
    ("calcium", 0.97),
    ("phosphate", 0.95),
    ("pth_intact", 0.90),
    ("albumin", 0.70),
    ("creatinine", 0.75),
    ("alkaline_phosphatase", 0.40),
    ("vitamin_d_25oh", 0.25),
    ("hematocrit", 0.55),
    ("wbc", 0.60),
    ("platelets", 0.55),
)
_LAB_CODES = tuple(a for a, _ in _BASELINE_LABS)
_UNITS = {a: _unit_table(REF.analytes[a]) for a in _LAB_CODES}
_CREATININE_MEDIAN = np.array(  # mg/dL, by kidney status
    [{"dialysis": 6.8, "transplant": 1.8, "ckd": 2.8, "aki": 3.5, "normal": 0.9, "unknown": 4.0}[k] for k in REF.codes("kidney_status")]
)
_LATER_LAB_CODES = ("calcium", "phosphate")
_LATER_LAB_SHARE = 0.30  # cases with a later calcium (and usually phosphate) value, day 7..60
_OWN_REFERENCE_RANGE_SHARE = 0.05

# ----------------------------------------------------------------------------- vocabularies and shares

_SEX = REF.codes("sex")
_KIDNEY = REF.codes("kidney_status")
_MODALITY = REF.codes("dialysis_modality")
_COMORBIDITIES = REF.codes("comorbidity")
_EXPOSURES = REF.codes("exposure")
_LESION_SITES = REF.codes("lesion_site")
_LATERALITY = REF.codes("laterality")
_FEATURES = REF.codes("lesion_feature")
_TREATMENTS = REF.codes("treatment")
_CAUSES = REF.codes("cause_of_death")
_HEALING = REF.codes("wound_healing")
_BASIS = REF.codes("diagnosis_basis")

_DIALYSIS = _KIDNEY.index("dialysis")
_NON_DIALYSIS_MIX = {"transplant": 0.30, "ckd": 0.35, "aki": 0.07, "normal": 0.21, "unknown": 0.07}
_KIDNEY_P = np.array(
    [CAL["dialysis_fraction"] if k == "dialysis" else (1 - CAL["dialysis_fraction"]) * _NON_DIALYSIS_MIX[k] for k in _KIDNEY]
)
_MODALITY_P = np.array([{"hemodialysis": 0.90, "peritoneal_dialysis": 0.10}[m] for m in _MODALITY])

_SEX_UNKNOWN = 0.01
_SEX_P = np.array(
    [
        {"female": CAL["female_fraction"] * (1 - _SEX_UNKNOWN), "male": (1 - CAL["female_fraction"]) * (1 - _SEX_UNKNOWN),
         "other": 0.0, "unknown": _SEX_UNKNOWN}[s]
        for s in _SEX
    ]
)

# Age: a main component around the registry median and a small young one (2-3 % reach 90+).
_AGE_YOUNG_SHARE, _AGE_YOUNG_MEAN, _AGE_YOUNG_SD, _AGE_SD = 0.04, 44.0, 11.0, 10.0


def _age_location() -> float:
    """Mean of the main component so that the whole years (floor) have the published median."""
    target = CAL["age_median"] + 0.5  # the continuous median; floor() then gives the target
    young_below = NormalDist(_AGE_YOUNG_MEAN, _AGE_YOUNG_SD).cdf(target)
    z = NormalDist().inv_cdf((0.5 - _AGE_YOUNG_SHARE * young_below) / (1 - _AGE_YOUNG_SHARE))
    return target - z * _AGE_SD


_AGE_MEAN = _age_location()
_YEARS = np.arange(2006, 2026)
_YEAR_P = np.linspace(1.0, 2.0, len(_YEARS)) / np.linspace(1.0, 2.0, len(_YEARS)).sum()

# Tri-state facts: share known, share true among the known, share given as an explicit null (the rest
# is absent). Per kidney status where it matters (order of _KIDNEY: dialysis, transplant, ckd, aki,
# normal, unknown).
_TriSpec = tuple[float, float | tuple[float, ...], float]
_COMORBIDITY_SPEC: dict[str, _TriSpec] = {
    "diabetes": (0.97, CAL["diabetes_fraction"], 0.01),
    "obesity": (0.80, 0.35, 0.02),  # replaced by BMI >= 30 when BMI is known
    "hypertension": (0.90, 0.82, 0.02),
    "hyperparathyroidism_primary": (0.75, (0.02, 0.02, 0.04, 0.02, 0.25, 0.05), 0.02),
    "hyperparathyroidism_secondary": (0.85, (0.65, 0.25, 0.55, 0.05, 0.02, 0.30), 0.02),
    "hyperparathyroidism_tertiary": (0.75, (0.06, 0.30, 0.02, 0.01, 0.01, 0.03), 0.02),
    "hypercalcemia": (0.75, 0.15, 0.02),  # derived from the baseline calcium when measured
    "hyperphosphatemia": (0.75, 0.45, 0.02),  # derived from the baseline phosphate when measured
    "malignancy": (0.85, 0.08, 0.02),
    "liver_disease": (0.80, 0.07, 0.02),
    "autoimmune_disease": (0.80, 0.06, 0.02),
    "thrombophilia": (0.60, 0.05, 0.02),
    "hypoalbuminemia": (0.75, 0.55, 0.02),  # derived from the baseline albumin when measured
}
_WARFARIN_TRUE, _WARFARIN_FALSE, _WARFARIN_NULL = CAL["vka_fraction"], 0.40, 0.03  # the rest (5 %) absent
_EXPOSURE_SPEC: dict[str, _TriSpec] = {
    "other_anticoagulant": (0.85, 0.12, 0.02),
    "corticosteroids": (0.85, 0.15, 0.02),
    "calcium_based_binder": (0.85, (0.45, 0.10, 0.20, 0.05, 0.02, 0.25), 0.02),
    "active_vitamin_d": (0.85, (0.55, 0.20, 0.30, 0.05, 0.03, 0.30), 0.02),
    "nutritional_vitamin_d": (0.75, 0.30, 0.02),
    "calcimimetic": (0.85, (0.25, 0.10, 0.03, 0.01, 0.01, 0.10), 0.02),
    "iron": (0.80, (0.60, 0.20, 0.30, 0.10, 0.05, 0.30), 0.02),
    "immunosuppressant": (0.85, (0.04, 0.92, 0.05, 0.05, 0.08, 0.05), 0.02),
}

# Lesions. One lesion of a "legs or buttocks" case is drawn from _LEG_SITES; the others from all
# sites; a case without leg lesions draws every lesion from the remaining sites.
_LEG_SITES = {"lower_leg": 0.40, "thigh": 0.30, "buttock": 0.15, "foot": 0.15}
_OTHER_SITES = {"abdomen": 0.40, "breast": 0.14, "trunk": 0.12, "upper_limb": 0.12, "hand": 0.05,
                "penis": 0.06, "face": 0.04, "other": 0.07}
_SITE_P_LEG = np.array([_LEG_SITES.get(s, 0.0) for s in _LESION_SITES])
_SITE_P_OTHER = np.array([_OTHER_SITES.get(s, 0.0) for s in _LESION_SITES])
_SITE_P_ANY = 0.5 * _SITE_P_LEG + 0.5 * _SITE_P_OTHER
_NO_LESIONS_SHARE = 0.03
_LESION_COUNT_P = np.array([0.50, 0.30, 0.20])  # 1, 2, 3 lesions
_LIMB = {"left": 0.30, "right": 0.30, "bilateral": 0.30, "unknown": 0.10}
_MIDLINE = {"midline": 0.40, "left": 0.20, "right": 0.20, "bilateral": 0.10, "unknown": 0.10}
_LATERALITY_BY_SITE = {
    "abdomen": _MIDLINE, "trunk": _MIDLINE, "breast": {"left": 0.40, "right": 0.40, "bilateral": 0.15, "unknown": 0.05},
    "buttock": {"left": 0.25, "right": 0.25, "bilateral": 0.40, "unknown": 0.10},
    "thigh": _LIMB, "lower_leg": _LIMB, "foot": _LIMB, "upper_limb": _LIMB, "hand": _LIMB,
    "penis": {"midline": 0.90, "unknown": 0.10},
    "face": {"left": 0.30, "right": 0.30, "bilateral": 0.10, "midline": 0.20, "unknown": 0.10},
    "other": {"left": 0.10, "right": 0.10, "bilateral": 0.10, "midline": 0.10, "unknown": 0.60},
}
_LATERALITY_P = np.array([[_LATERALITY_BY_SITE[s].get(side, 0.0) for side in _LATERALITY] for s in _LESION_SITES])
_LATERALITY_ABSENT = 0.10
_FEATURE_P = np.array(
    [{"livedo": 0.35, "retiform_purpura": 0.30, "violaceous": 0.25, "nodule": 0.15, "plaque": 0.20,
      "induration": 0.30, "ulcer": 0.55, "necrosis": 0.50, "eschar": 0.25, "bulla": 0.05}[f] for f in _FEATURES]
)
_FEATURE_SETS = tuple(tuple(f for j, f in enumerate(_FEATURES) if mask >> j & 1) for mask in range(1 << len(_FEATURES)))

# Organs: skin always; subcutaneous fat, skeletal muscle, and visceral organs in a few.
_SUBCUTANEOUS_FAT_SHARE, _MUSCLE_SHARE = 0.40, 0.03
_VISCERAL_SHARE, _VISCERAL_SHARE_AUTOPSY = 0.06, 0.50
_VISCERAL = {"lung": 0.20, "heart": 0.15, "gastrointestinal_tract": 0.15, "mesenteric_vessels": 0.15, "kidney": 0.08,
             "eye": 0.07, "brain": 0.03, "liver": 0.04, "spleen": 0.03, "pancreas": 0.03, "lymph_node": 0.02, "other": 0.05}
_VISCERAL_CODES = tuple(_VISCERAL)
_VISCERAL_P = np.array([_VISCERAL[o] for o in _VISCERAL_CODES])

# Diagnosis: biopsy / clinical / autopsy (autopsy only for cases that died).
_AUTOPSY_GIVEN_DEAD = 0.028  # about 70 % of cases die under follow-up: about 2 % of all cases
_AUTOPSY_SHARE = 0.02
_BIOPSY_SHARE = 0.60  # of all cases; the rest is clinical

# Survival: Weibull death times with S(365) from the Mayo cohort, administrative censoring.
_WEIBULL_SHAPE = 0.9
_WEIBULL_SCALE = 365.0 / (-math.log(CAL["survival_1y"])) ** (1 / _WEIBULL_SHAPE)
_CENSOR_MIN, _CENSOR_MAX = 30.0, 1800.0
_VITAL_UNKNOWN = 0.03
_CAUSE_P = np.array([{"calciphylaxis": 0.30, "sepsis": 0.30, "cardiovascular": 0.20, "respiratory": 0.05,
                      "other": 0.10, "unknown": 0.05}[c] for c in _CAUSES])
_HEALING_ALIVE = np.array([{"complete": 0.35, "partial": 0.30, "none": 0.15, "not_applicable": 0.0, "unknown": 0.10}[h] for h in _HEALING])
_HEALING_DEAD = np.array([{"complete": 0.02, "partial": 0.25, "none": 0.43, "not_applicable": 0.0, "unknown": 0.15}[h] for h in _HEALING])

# Treatments: share of cases per kidney status (order of _KIDNEY), or one share for all.
_TREATMENT_SPEC: dict[str, float | tuple[float, ...]] = {
    "sodium_thiosulfate": 0.70,
    "parathyroidectomy": (0.08, 0.03, 0.02, 0.0, 0.05, 0.03),
    "cinacalcet": (0.28, 0.08, 0.05, 0.0, 0.02, 0.10),
    "bisphosphonate": 0.04,
    "hyperbaric_oxygen": 0.06,
    "hemodialysis": (0.0, 0.05, 0.12, 0.50, 0.0, 0.05),
    "peritoneal_dialysis": (0.0, 0.0, 0.01, 0.0, 0.0, 0.0),
    "dialysis_intensification": (0.35, 0.0, 0.0, 0.0, 0.0, 0.05),
    "kidney_transplant": (0.005, 0.0, 0.0, 0.0, 0.0, 0.0),
    "wound_care": 0.85,
    "surgical_debridement": 0.30,
    "antibiotics": 0.45,
    "corticosteroids": 0.03,
    "antihistamine": 0.01,
    "calcitonin": 0.005,
    "loop_diuretic": 0.03,
    "iv_hydration": 0.04,
    "vitamin_k": 0.08,  # 0.20 when warfarin was given
    "anticoagulant_withdrawal": 0.02,  # 0.65 when warfarin was given
    "mechanical_ventilation": 0.03,
    "other": 0.05,
}
_TREATMENT_P = np.array(
    [[v[k] if isinstance(v, tuple) else v for k in range(len(_KIDNEY))] for v in (_TREATMENT_SPEC[t] for t in _TREATMENTS)]
).T  # (kidney status, treatment)


def _tri_p(spec: _TriSpec, status: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float, float]:
    known, p_true, p_null = spec
    pt = np.asarray(p_true)[status] if isinstance(p_true, tuple) else p_true
    return known * pt, known * (1 - pt), p_null


# ----------------------------------------------------------------------------- drawing one block


def _categorical(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Indices drawn with probabilities ``p`` (1-D, shared) or ``p[..., k]`` (one row per draw)."""
    cum = np.cumsum(p, axis=-1)
    cum = cum / cum[..., -1:]
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    return np.minimum((u[..., None] >= cum).sum(axis=-1), cum.shape[-1] - 1)


def _tristate(u: np.ndarray, p_true, p_false, p_null) -> np.ndarray:
    """0 absent, 1 null, 2 false, 3 true."""
    return np.where(u < p_true, 3, np.where(u < p_true + p_false, 2, np.where(u < p_true + p_false + p_null, 1, 0))).astype(np.int8)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, m: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(m))


def _draw_block(seed: int, block: int) -> dict[str, Any]:
    """All random draws of one block of CHUNK_SIZE cases, as numpy arrays."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block])))
    m = CHUNK_SIZE
    d: dict[str, Any] = {}

    # Who and where.
    site = rng.choice(len(SITES), size=m, p=np.array([s.weight for s in SITES]) / sum(s.weight for s in SITES))
    d["site"] = site
    d["year"] = _YEARS[_categorical(rng.random(m), _YEAR_P)]
    young = rng.random(m) < _AGE_YOUNG_SHARE
    age = np.where(young, rng.normal(_AGE_YOUNG_MEAN, _AGE_YOUNG_SD, m), rng.normal(_AGE_MEAN, _AGE_SD, m))
    d["age"] = np.clip(np.floor(age), 1, 120).astype(np.int64)
    d["sex"] = _categorical(rng.random(m), _SEX_P)
    bmi = np.clip(rng.normal(28.5, 6.5, m), 14.0, 60.0).round(1)
    d["bmi"] = np.where(rng.random(m) < 0.65, bmi, np.nan)

    status = _categorical(rng.random(m), _KIDNEY_P)
    d["status"] = status
    d["modality"] = _categorical(rng.random(m), _MODALITY_P)
    vintage = np.clip(np.rint(_lognormal(rng, 40.0, 0.9, m)), 0, 600).astype(np.int64)
    d["vintage"] = np.where(rng.random(m) < 0.95, vintage, -1)

    # Timeline: onset, death or censoring, vital status.
    onset = -np.minimum(90, np.floor(rng.exponential(28.0, m))).astype(np.int64)
    d["onset_present"] = rng.random(m) < 0.85
    d["onset"] = onset
    death = _WEIBULL_SCALE * rng.weibull(_WEIBULL_SHAPE, m)
    censor = rng.uniform(_CENSOR_MIN, _CENSOR_MAX, m)
    died = death <= censor
    followup = np.rint(np.minimum(death, censor)).astype(np.int64)
    d["followup"] = followup
    unknown = rng.random(m) < _VITAL_UNKNOWN
    d["vital"] = np.where(unknown, 2, np.where(died, 1, 0))  # 0 alive, 1 dead, 2 unknown
    d["unknown_gives_last_contact"] = rng.random(m) < 0.5
    d["cause"] = np.where(rng.random(m) < 0.92, _categorical(rng.random(m), _CAUSE_P), -1)
    d["healing"] = np.where(
        rng.random(m) < 0.85,
        np.where(died, _categorical(rng.random(m), _HEALING_DEAD), _categorical(rng.random(m), _HEALING_ALIVE)),
        -1,
    )
    autopsy_flag = rng.random(m)

    # Diagnosis.
    autopsy_basis = died & ~unknown & (rng.random(m) < _AUTOPSY_GIVEN_DEAD)
    biopsy = rng.random(m) < _BIOPSY_SHARE / (1 - _AUTOPSY_SHARE)
    basis = np.where(autopsy_basis, _BASIS.index("autopsy"), np.where(biopsy, _BASIS.index("biopsy"), _BASIS.index("clinical")))
    d["basis"] = basis
    autopsy_done = np.where(autopsy_flag < 0.10, 3, np.where(autopsy_flag < 0.60, 2, 0))  # true / false / absent
    d["outcome_autopsy"] = np.where(autopsy_basis, 3, np.where(died, autopsy_done, 0))
    early = np.floor(rng.exponential(4.0, m)).astype(np.int64)
    pre = d["onset_present"] & (rng.random(m) < 0.06)
    pre_day = onset + np.floor(rng.random(m) * (-onset + 1)).astype(np.int64)
    clinical_day = np.where(rng.random(m) < 0.6, 0, np.floor(rng.exponential(3.0, m)).astype(np.int64))
    dx_day = np.where(basis == _BASIS.index("biopsy"), early, clinical_day)
    dx_day = np.where(pre, np.minimum(pre_day, 0), np.minimum(dx_day, followup))
    dx_day = np.where(autopsy_basis, followup, dx_day)
    d["dx_day"] = np.where(autopsy_basis | (rng.random(m) < 0.92), dx_day, np.iinfo(np.int64).min)

    # Comorbidities and exposures (tri-state codes, one column per vocabulary code).
    d["comorbidities"] = np.stack([_tristate(rng.random(m), *_tri_p(_COMORBIDITY_SPEC[c], status)) for c in _COMORBIDITIES], axis=1)
    warfarin = _tristate(rng.random(m), _WARFARIN_TRUE, _WARFARIN_FALSE, _WARFARIN_NULL)
    d["exposures"] = np.stack(
        [warfarin if e == "warfarin" else _tristate(rng.random(m), *_tri_p(_EXPOSURE_SPEC[e], status)) for e in _EXPOSURES], axis=1
    )

    # Lesions: count (0 = no lesions array), sites, laterality, features.
    count = 1 + _categorical(rng.random(m), _LESION_COUNT_P)
    d["lesion_count"] = np.where(rng.random(m) < _NO_LESIONS_SHARE, 0, count)
    legs = rng.random(m) < CAL["legs_or_buttocks_fraction"]
    first = np.where(legs, _categorical(rng.random(m), _SITE_P_LEG), _categorical(rng.random(m), _SITE_P_OTHER))
    more = np.where(legs[:, None], _categorical(rng.random((m, 2)), _SITE_P_ANY), _categorical(rng.random((m, 2)), _SITE_P_OTHER))
    sites = np.concatenate([first[:, None], more], axis=1)
    d["lesion_site"] = sites
    lat = _categorical(rng.random((m, 3)), _LATERALITY_P[sites])
    d["lesion_laterality"] = np.where(rng.random((m, 3)) < _LATERALITY_ABSENT, -1, lat)
    d["lesion_features"] = (rng.random((m, 3, len(_FEATURES))) < _FEATURE_P) @ (1 << np.arange(len(_FEATURES)))
    d["lesion_rotate"] = rng.integers(0, 3, m)

    # Organs.
    d["subcutaneous_fat"] = rng.random(m) < _SUBCUTANEOUS_FAT_SHARE
    d["muscle"] = rng.random(m) < _MUSCLE_SHARE
    visceral_share = np.where(autopsy_basis, _VISCERAL_SHARE_AUTOPSY, _VISCERAL_SHARE)
    d["visceral_count"] = np.where(rng.random(m) < visceral_share, np.where(rng.random(m) < 0.75, 1, 2), 0)
    d["visceral"] = _categorical(rng.random((m, 2)), _VISCERAL_P)
    d["visceral_evidence"] = _categorical(rng.random((m, 2)), np.array([0.25, 0.0, 0.65, 0.10]))  # histology/gross/imaging/clinical
    d["evidence_absent"] = rng.random((m, 3)) < 0.05

    # Labs: canonical values, clipped to the hard limits, then reported in the site's unit.
    ca_mmol = _factor("calcium", "mmol/L")
    po_mmol = _factor("phosphate", "mmol/L")
    canonical = {
        "calcium": rng.normal(CAL["calcium_median"], 0.25, m) * ca_mmol,
        "phosphate": _lognormal(rng, CAL["phosphate_median"], 0.30, m) * po_mmol,
        "pth_intact": _lognormal(rng, CAL["pth_intact_median"], 0.95, m),
        "albumin": rng.normal(3.1, 0.55, m),
        "creatinine": _lognormal(rng, 1.0, 0.35, m) * _CREATININE_MEDIAN[status],
        "alkaline_phosphatase": _lognormal(rng, 125.0, 0.50, m),
        "vitamin_d_25oh": _lognormal(rng, 17.0, 0.55, m),
        "hematocrit": rng.normal(31.0, 4.5, m),
        "wbc": _lognormal(rng, 8.8, 0.35, m),
        "platelets": _lognormal(rng, 225.0, 0.35, m),
    }
    later_case = rng.random(m) < _LATER_LAB_SHARE
    later_day = 7 + np.floor(rng.random(m) * (np.minimum(followup, 60) - 6)).astype(np.int64)
    has_later = later_case & (followup >= 7)
    d["later_day"] = later_day
    d["later_calcium"] = has_later
    d["later_phosphate"] = has_later & (rng.random(m) < 0.8)
    later_canonical = {
        "calcium": canonical["calcium"] * np.exp(rng.normal(0.0, 0.06, m)),
        "phosphate": canonical["phosphate"] * np.exp(rng.normal(-0.05, 0.15, m)),
    }
    labs = {}
    for code, share in _BASELINE_LABS:
        analyte, table = REF.analytes[code], _UNITS[code]
        option = np.minimum((rng.random(m)[:, None] >= table.cum[site]).sum(axis=1), table.width - 1)
        factor, decimals = table.factor[site, option], table.decimals[site, option]
        low, high = table.low[site, option], table.high[site, option]

        def report(values: np.ndarray) -> np.ndarray:
            values = np.clip(values, analyte.hard_min, analyte.hard_max)
            return np.clip(_round_to(values / factor, decimals), low, high)

        labs[code] = {
            "present": rng.random(m) < share,
            "value": report(canonical[code]),
            "later": report(later_canonical[code]) if code in _LATER_LAB_CODES else None,
            "decimals": decimals,
            "unit": site * table.width + option,
            "own_range": rng.random(m) < _OWN_REFERENCE_RANGE_SHARE,
            "own_range_later": rng.random(m) < _OWN_REFERENCE_RANGE_SHARE,
        }
    d["labs"] = labs
    # Derived comorbidities: usually recorded, and consistent, when the matching baseline lab was measured.
    derived = {
        "hypercalcemia": ("calcium", canonical["calcium"] > REF.analytes["calcium"].ref_high),
        "hyperphosphatemia": ("phosphate", canonical["phosphate"] > REF.analytes["phosphate"].ref_high),
        "hypoalbuminemia": ("albumin", canonical["albumin"] < REF.analytes["albumin"].ref_low),
    }
    known = rng.random(m) < 0.90
    for comorbidity, (code, high) in derived.items():
        j = _COMORBIDITIES.index(comorbidity)
        measured = labs[code]["present"] & known
        d["comorbidities"][:, j] = np.where(measured, np.where(high, 3, 2), d["comorbidities"][:, j])
    j = _COMORBIDITIES.index("obesity")
    d["comorbidities"][:, j] = np.where(np.isnan(d["bmi"]), d["comorbidities"][:, j], np.where(d["bmi"] >= 30, 3, 2))

    # Treatments: which, and on which day (within [onset, follow-up]).
    p = _TREATMENT_P[status].copy()
    on_warfarin = warfarin == 3
    p[:, _TREATMENTS.index("vitamin_k")] = np.where(on_warfarin, 0.20, p[:, _TREATMENTS.index("vitamin_k")])
    p[:, _TREATMENTS.index("anticoagulant_withdrawal")] = np.where(on_warfarin, 0.65, p[:, _TREATMENTS.index("anticoagulant_withdrawal")])
    nt = len(_TREATMENTS)
    d["treated"] = rng.random((m, nt)) < p
    span = np.minimum(followup, 45)[:, None] + 1
    days = np.floor(rng.random((m, nt)) * span).astype(np.int64)
    before = d["onset_present"][:, None] & (rng.random((m, nt)) < 0.07)
    days_before = onset[:, None] + np.floor(rng.random((m, nt)) * (-onset[:, None] + 1)).astype(np.int64)
    days = np.where(before, np.minimum(days_before, 0), days)
    d["treatment_day"] = np.where(rng.random((m, nt)) < 0.04, np.iinfo(np.int64).min, days)
    return d


# ----------------------------------------------------------------------------- building the records

_NO_DAY = int(np.iinfo(np.int64).min)
_TRI = (None, None, False, True)


def _lab_entries(code: str, d: dict[str, Any], sl: slice, *, later: bool = False) -> list[dict | None]:
    """One lab entry (or None) per case of the slice for one analyte: its baseline value at day 0,
    or with ``later`` its later value (calcium and phosphate only)."""
    x, table = d["labs"][code], _UNITS[code]
    spelling, ref_low, ref_high = table.spelling, table.ref_low, table.ref_high
    if later:
        present, values, days, own = d[f"later_{code}"], x["later"], d["later_day"][sl].tolist(), x["own_range_later"]
    else:
        present, values, days, own = x["present"], x["value"], repeat(0), x["own_range"]
    out: list[dict | None] = []
    append = out.append
    rows = zip(present[sl].tolist(), values[sl].tolist(), x["decimals"][sl].tolist(), x["unit"][sl].tolist(), own[sl].tolist(), days)
    for p, v, k, u, o, day in rows:
        if not p:
            append(None)
            continue
        entry = {"analyte": code, "value": v if k > 0 else int(v), "unit": spelling[u], "day": day}
        if o:
            if ref_low[u] is not None:
                entry["ref_low"] = ref_low[u]
            if ref_high[u] is not None:
                entry["ref_high"] = ref_high[u]
        append(entry)
    return out


def _treatment_entries(d: dict[str, Any], sl: slice) -> tuple[list[dict], list[int]]:
    """All treatment entries of the slice, flat, and each case's offset into them."""
    treated = d["treated"][sl]
    rows, cols = np.nonzero(treated)
    days = d["treatment_day"][sl][rows, cols]
    offsets = np.concatenate([[0], np.cumsum(treated.sum(axis=1))]).tolist()
    entries = [
        {"treatment": _TREATMENTS[c]} if day == _NO_DAY else {"treatment": _TREATMENTS[c], "day": day}
        for c, day in zip(cols.tolist(), days.tolist())
    ]
    return entries, offsets


def _records(d: dict[str, Any], seed: int, block: int, lo: int, hi: int) -> Iterator[dict]:
    """Assemble the cases ``lo..hi-1`` of one drawn block as case record dicts."""
    sl = slice(lo, hi)
    col = {k: v[sl].tolist() for k, v in d.items() if isinstance(v, np.ndarray) and k not in ("treated", "treatment_day")}
    lab_columns = [_lab_entries(code, d, sl) for code in _LAB_CODES]
    lab_columns += [_lab_entries(code, d, sl, later=True) for code in _LATER_LAB_CODES]
    labs_per_case = [[e for e in row if e is not None] for row in zip(*lab_columns)]
    treatments, offsets = _treatment_entries(d, sl)

    site_ids = [s.site_id for s in SITES]
    prefix = f"SYN-{seed}-"
    first = block * CHUNK_SIZE + lo
    tissue_bases = {_BASIS.index("biopsy"), _BASIS.index("autopsy")}
    autopsy_basis = _BASIS.index("autopsy")
    (site, year, onset_present, onset, age, sex, bmi, status, modality, vintage, comorbidities, exposures, basis,
     dx_day, lesion_count, lesion_site, lesion_laterality, lesion_features, lesion_rotate, evidence_absent,
     subcutaneous_fat, muscle, visceral_count, visceral, visceral_evidence, vital, followup, cause, outcome_autopsy,
     unknown_gives_last_contact, healing) = (
        col[k] for k in (
            "site", "year", "onset_present", "onset", "age", "sex", "bmi", "status", "modality", "vintage",
            "comorbidities", "exposures", "basis", "dx_day", "lesion_count", "lesion_site", "lesion_laterality",
            "lesion_features", "lesion_rotate", "evidence_absent", "subcutaneous_fat", "muscle", "visceral_count",
            "visceral", "visceral_evidence", "vital", "followup", "cause", "outcome_autopsy",
            "unknown_gives_last_contact", "healing",
        )
    )

    for i in range(hi - lo):
        rec: dict[str, Any] = {
            "schema_version": 1,
            "case_id": f"{prefix}{first + i + 1:07d}",
            "revision": 1,
            "site_id": site_ids[site[i]],
            "source": "synthetic",
            "index_year": year[i],
        }
        if onset_present[i]:
            rec["onset_day"] = onset[i]

        patient: dict[str, Any] = {"age_years": age[i], "sex": _SEX[sex[i]]}
        if bmi[i] == bmi[i]:  # not NaN
            patient["bmi"] = bmi[i]
        rec["patient"] = patient

        if status[i] == _DIALYSIS:
            kidney: dict[str, Any] = {"status": "dialysis", "dialysis_modality": _MODALITY[modality[i]]}
            if vintage[i] >= 0:
                kidney["dialysis_vintage_months"] = vintage[i]
        else:
            kidney = {"status": _KIDNEY[status[i]]}
        rec["kidney"] = kidney

        facts = {c: _TRI[s] for c, s in zip(_COMORBIDITIES, comorbidities[i]) if s}
        if facts:
            rec["comorbidities"] = facts
        facts = {e: _TRI[s] for e, s in zip(_EXPOSURES, exposures[i]) if s}
        if facts:
            rec["exposures"] = facts

        b = basis[i]
        rec["diagnosis"] = {"basis": _BASIS[b]} if dx_day[i] == _NO_DAY else {"basis": _BASIS[b], "day": dx_day[i]}

        n_lesions = lesion_count[i]
        if n_lesions:
            sites, lats, feats = lesion_site[i], lesion_laterality[i], lesion_features[i]
            lesions, seen = [], set()
            for k in range(n_lesions):
                s = sites[k]
                if s in seen:
                    continue
                seen.add(s)
                lesion: dict[str, Any] = {"site": _LESION_SITES[s]}
                if lats[k] >= 0:
                    lesion["laterality"] = _LATERALITY[lats[k]]
                if feats[k]:
                    lesion["features"] = list(_FEATURE_SETS[feats[k]])
                lesions.append(lesion)
            r = lesion_rotate[i] % len(lesions)
            rec["lesions"] = lesions[r:] + lesions[:r] if r else lesions

        no_evidence = evidence_absent[i]
        tissue = b in tissue_bases
        organs: list[dict[str, Any]] = [
            {"organ": "skin"} if no_evidence[0] else {"organ": "skin", "evidence": "histology" if tissue else "clinical"}
        ]
        if subcutaneous_fat[i]:
            organs.append(
                {"organ": "subcutaneous_fat"} if no_evidence[1]
                else {"organ": "subcutaneous_fat", "evidence": "histology" if tissue else "imaging"}
            )
        if muscle[i]:
            organs.append({"organ": "skeletal_muscle", "evidence": "histology" if tissue else "imaging"})
        if visceral_count[i]:
            previous = None
            for k in range(visceral_count[i]):
                v = visceral[i][k]
                if v == previous:
                    continue
                previous = v
                if b == autopsy_basis:
                    evidence = ("gross", "histology")[k]
                else:
                    evidence = ("histology", "gross", "imaging", "clinical")[visceral_evidence[i][k]]
                organs.append({"organ": _VISCERAL_CODES[v], "evidence": evidence})
        rec["organs"] = organs

        if labs_per_case[i]:
            rec["labs"] = labs_per_case[i]
        if offsets[i + 1] > offsets[i]:
            rec["treatments"] = treatments[offsets[i]:offsets[i + 1]]

        vs = vital[i]
        if vs == 0:
            outcome: dict[str, Any] = {"vital_status": "alive", "followup_days": followup[i]}
        elif vs == 1:
            outcome = {"vital_status": "dead", "followup_days": followup[i]}
            if cause[i] >= 0:
                outcome["cause_of_death"] = _CAUSES[cause[i]]
            if outcome_autopsy[i]:
                outcome["autopsy"] = outcome_autopsy[i] == 3
        else:
            outcome = {"vital_status": "unknown"}
            if unknown_gives_last_contact[i]:
                outcome["followup_days"] = followup[i]
        if healing[i] >= 0:
            outcome["wound_healing"] = _HEALING[healing[i]]
        rec["outcome"] = outcome
        yield rec


# ----------------------------------------------------------------------------- public API


def _check(n: int, seed: int, start_index: int = 0) -> None:
    for name, v in (("n", n), ("seed", seed), ("start_index", start_index)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a whole number >= 0, not {v!r}")
    if len(str(seed)) > 40:
        raise ValueError("seed must have at most 40 digits (it is part of every case_id)")


def generate_records(n: int, seed: int, *, start_index: int = 0) -> Iterator[dict]:
    """Yield ``n`` synthetic case records of cohort ``seed``, starting at case number
    ``start_index`` (0-based; the case_id counts from 1). Deterministic; a cohort's first ``k``
    cases do not depend on its size."""
    _check(n, seed, start_index)
    end = start_index + n
    index = start_index
    while index < end:
        block = index // CHUNK_SIZE
        lo = index - block * CHUNK_SIZE
        hi = min(end - block * CHUNK_SIZE, CHUNK_SIZE)
        yield from _records(_draw_block(seed, block), seed, block, lo, hi)
        index = block * CHUNK_SIZE + hi


def write_jsonl(path: str | os.PathLike[str], n: int, seed: int) -> int:
    """Write a cohort of ``n`` cases as JSON Lines (UTF-8, one record per line) and return ``n``.

    The file appears atomically: it is written to a temporary file in the same folder and then
    renamed over ``path``, so a reader never sees half a cohort. Memory stays bounded by one block.
    """
    _check(n, seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    count = 0
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            write = f.write
            for rec in generate_records(n, seed):
                write(dumps(rec, option=newline))
                count += 1
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return count
