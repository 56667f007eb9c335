"""One contract, several executions: the set-based check in DuckDB (orchestration.contract.setbased)
and the compiled check in Python (orchestration.contract.fastcheck, the one landing uses; see the
end of this file) against the Python validator (validate_record), on thousands of generated valid
and broken records.

* Soundness, for every record: when the set-based check passes a record, validate_record finds no
  error. (Landing relies on exactly this: a record it passes is landed without the Python validator.)
* Agreement: on records whose values are in the forms the set-based check reads exactly, the two
  verdicts are equal, so that the set-based check is not a no-op that sends everything to Python.
  The forms it deliberately leaves to Python (whole-number floats such as ``40.0`` in integer
  fields, NaN/Infinity, a lab value exactly on a physiological bound) are marked ``lenient`` by the
  strategy: there only soundness is asserted.
"""

from __future__ import annotations

import copy
import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from orchestration.contract import fastcheck
from orchestration.contract.fastcheck import certainly_valid, compiled_source
from orchestration.contract.model import REF
from orchestration.contract.reference import unit_key
from orchestration.contract.setbased import SetChecker
from orchestration.contract.validate import validate_record
from orchestration.registry.landing import content_hash
from orchestration.synthetic.generate import generate_records

BASE = list(generate_records(300, seed=7))
TODAY = dt.date.today()


@pytest.fixture(scope="module")
def checker():
    c = SetChecker(threads=1)
    yield c
    c.close()


def _canonical(obj):
    try:
        return (obj, content_hash(obj)[0])
    except (TypeError, ValueError, OverflowError):
        return None


def _verdicts(checker, objs):
    return checker.passing([_canonical(o) if isinstance(o, dict) else None for o in objs], today=TODAY)


# --------------------------------------------------------------------------- values and places

WEIRD = [
    None, True, False, 0, 1, -1, 2, 120, 121, 1950, 2 ** 31 - 1, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1,
    -(2 ** 63), 36500, 36501, -36500, -36501, 0.5, 40.5, -3.25, 1e300, -1e300, 10, 9.99, 90, 90.01,
    "", " ", "x", "40", "true", "null", "male", "dialysis", "dead", "alive", "unknown", "skin", "calcium",
    "mmol/L", "ABC", "ab", "a" * 64, "a" * 65, "é" * 300, "é" * 501, "a\nb", "\u0000", "ÄÖÜ-ID", "x y",
    [], [1], ["x"], {}, {"a": 1}, [{}], [None], {"organ": "skin"},
]
# values deliberately left to Python: soundness only
LENIENT = [40.0, 1.0, -0.0, 0.0, float("nan"), float("inf"), float("-inf")]

TOP_FIELDS = [
    "schema_version", "case_id", "revision", "site_id", "source", "citation", "index_year", "onset_day",
    "patient", "kidney", "comorbidities", "exposures", "diagnosis", "lesions", "organs", "labs", "treatments", "outcome",
]
NESTED = {
    "patient": ["age_years", "sex", "bmi"],
    "kidney": ["status", "dialysis_modality", "dialysis_vintage_months"],
    "diagnosis": ["basis", "day"],
    "outcome": ["vital_status", "followup_days", "cause_of_death", "autopsy", "wound_healing"],
    "comorbidities": list(REF.codes("comorbidity")),
    "exposures": list(REF.codes("exposure")),
}
ELEMENTS = {
    "labs": ["analyte", "value", "unit", "day", "ref_low", "ref_high"],
    "lesions": ["site", "laterality", "features"],
    "organs": ["organ", "evidence"],
    "treatments": ["treatment", "day"],
}
UNITS = sorted({u.unit for a in REF.analytes.values() for u in a.units}) + [
    "MMOL/L", "mmol/l", " mmol/L ", "mmol / L", "umol/L", "μmol/L", "mg/dl", "MG/DL", "furlongs", "", "10^9/l", "K/uL",
]


@st.composite
def mutation(draw):
    """One edit of a valid record, and whether it is one the set-based check leaves to Python."""
    kind = draw(st.sampled_from(["set_top", "set_nested", "set_element", "delete", "unknown_key", "unit", "lab_value", "cross", "organs"]))
    lenient_value = draw(st.booleans()) and draw(st.booleans())
    value = draw(st.sampled_from(LENIENT)) if lenient_value else draw(st.sampled_from(WEIRD))
    value = copy.deepcopy(value)
    if kind == "set_top":
        return ("set", (draw(st.sampled_from(TOP_FIELDS)),), value, lenient_value)
    if kind == "set_nested":
        obj = draw(st.sampled_from(sorted(NESTED)))
        return ("set", (obj, draw(st.sampled_from(NESTED[obj]))), value, lenient_value)
    if kind == "set_element":
        lst = draw(st.sampled_from(sorted(ELEMENTS)))
        return ("set", (lst, draw(st.integers(0, 3)), draw(st.sampled_from(ELEMENTS[lst]))), value, lenient_value)
    if kind == "delete":
        where = draw(st.sampled_from(TOP_FIELDS + [f"{o}.{k}" for o, ks in NESTED.items() for k in ks[:3]]))
        return ("delete", tuple(where.split(".")), None, False)
    if kind == "unknown_key":
        where = draw(st.sampled_from(["", "patient", "kidney", "comorbidities", "outcome", "labs.0", "organs.0", "lesions.0", "treatments.0"]))
        key = draw(st.sampled_from(["name", "mrn", "date_of_birth", "extra", "Patient", "age"]))
        return ("unknown", tuple(int(p) if p.isdigit() else p for p in where.split(".") if p), key, False)
    if kind == "unit":
        return ("set", ("labs", draw(st.integers(0, 3)), "unit"), draw(st.sampled_from(UNITS)), False)
    if kind == "lab_value":
        return ("lab_value", draw(st.integers(0, 3)), draw(st.sampled_from(["min", "max", "below", "above", "mid", "on_min", "on_max"])), False)
    if kind == "organs":
        return ("organs", None, draw(st.sampled_from(["dup", "empty", "many"])), False)
    return ("cross", None, draw(st.sampled_from([
        "not_dialysis", "alive_no_followup", "unknown_with_cause", "followup_short", "onset_late",
        "ref_inverted", "year_future", "lab_day_before_onset", "treatment_after_followup",
    ])), False)


def _resolve(obj, path):
    for p in path[:-1]:
        if isinstance(obj, dict):
            obj = obj.get(p)
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return None, None
    return obj, path[-1]


def apply(rec, m):
    """Apply one mutation; returns whether the result is a form left to Python (lenient)."""
    op, path, value, lenient = m
    if op == "set" and path == ("schema_version",) and value is True:
        # pydantic's Literal[1] accepts true (true == 1 in Python): a quirk of the validator that the
        # set-based check does not copy (JSON Schema's const 1 refuses true); left to Python
        lenient = True
    if op == "set":
        parent, key = _resolve(rec, path)
        if isinstance(parent, dict):
            parent[key] = value
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            parent[key] = value
        return lenient
    if op == "delete":
        parent, key = _resolve(rec, path)
        if isinstance(parent, dict):
            parent.pop(key, None)
        return False
    if op == "unknown":
        parent, _ = _resolve(rec, path + ("_",)) if path else (rec, None)
        if isinstance(parent, dict):
            parent[value] = "x"
        return False
    if op == "lab_value":
        labs = rec.get("labs")
        if not isinstance(labs, list) or path >= len(labs) or not isinstance(labs[path], dict):
            return False
        lab = labs[path]
        a = REF.analytes.get(lab["analyte"]) if isinstance(lab.get("analyte"), str) else None
        u = a.by_key.get(unit_key(lab["unit"]) or "") if a and isinstance(lab.get("unit"), str) else None
        if u is None:
            return False
        lo, hi = a.hard_min / u.factor, a.hard_max / u.factor
        span = hi - lo
        lab["value"] = {"min": lo + span * 1e-3, "max": hi - span * 1e-3, "below": lo - span * 1e-3, "above": hi + span * 1e-3,
                        "mid": (lo + hi) / 2, "on_min": lo, "on_max": hi}[value]
        return value in ("on_min", "on_max")  # on a bound (after a division): left to Python
    if op == "organs":
        if value == "dup" and isinstance(rec.get("organs"), list) and rec["organs"] and isinstance(rec["organs"][0], dict):
            rec["organs"] = rec["organs"] + [dict(rec["organs"][0])]
        elif value == "empty":
            rec["organs"] = []
        elif value == "many":
            rec["organs"] = [{"organ": o} for o in REF.codes("organ")]
        return False
    # cross-field rules
    out = rec["outcome"] if isinstance(rec.get("outcome"), dict) else {}
    kid = rec["kidney"] if isinstance(rec.get("kidney"), dict) else {}
    labs = rec["labs"] if isinstance(rec.get("labs"), list) and rec["labs"] and isinstance(rec["labs"][0], dict) else None
    treatments = rec["treatments"] if isinstance(rec.get("treatments"), list) and rec["treatments"] and isinstance(rec["treatments"][0], dict) else None
    if value == "not_dialysis":
        kid["status"] = "ckd"
    elif value == "alive_no_followup":
        out["vital_status"] = "alive"
        out.pop("followup_days", None)
        out.pop("cause_of_death", None)
    elif value == "unknown_with_cause":
        out["vital_status"] = "unknown"
        out["cause_of_death"] = REF.codes("cause_of_death")[0]
    elif value == "followup_short":
        out["followup_days"] = 1
    elif value == "onset_late":
        rec["onset_day"] = 0
    elif value == "ref_inverted" and labs:
        labs[0]["ref_low"], labs[0]["ref_high"] = 5, 1
    elif value == "year_future":
        rec["index_year"] = TODAY.year + 1
    elif value == "lab_day_before_onset" and labs:
        rec["onset_day"] = -1
        labs[0]["day"] = -5
    elif value == "treatment_after_followup" and treatments:
        treatments[0]["day"] = 36_000
    return False


records = st.tuples(st.integers(0, len(BASE) - 1), st.lists(mutation(), min_size=0, max_size=3))


def _on_bound(rec) -> bool:
    """A lab value on (within 1e-6 of) a physiological bound: left to Python by design."""
    labs = rec.get("labs") if isinstance(rec, dict) else None
    for lab in labs if isinstance(labs, list) else ():
        if not (isinstance(lab, dict) and isinstance(lab.get("analyte"), str) and isinstance(lab.get("unit"), str)):
            continue
        a = REF.analytes.get(lab["analyte"])
        u = a.by_key.get(unit_key(lab["unit"]) or "") if a else None
        v = lab.get("value")
        if u is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            canon = v * u.factor
            if any(abs(canon - b) <= 1e-6 * max(1.0, abs(b)) for b in (a.hard_min, a.hard_max)):
                return True
    return False


def _build(spec):
    i, ms = spec
    rec = copy.deepcopy(BASE[i])
    lenient = False
    for m in ms:
        lenient |= apply(rec, m)
    return rec, lenient or _on_bound(rec)


def _nonfinite(x):
    if isinstance(x, float):
        return not math.isfinite(x)
    if isinstance(x, dict):
        return any(_nonfinite(v) for v in x.values())
    if isinstance(x, list):
        return any(_nonfinite(v) for v in x)
    return False


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(records, min_size=20, max_size=80))
def test_setbased_agrees_with_validate_record(checker, specs):
    built = [_build(s) for s in specs]
    objs = [r for r, _ in built]
    verdicts = _verdicts(checker, objs)
    for (obj, lenient), certain in zip(built, verdicts):
        errors = validate_record(obj)
        if certain:
            assert errors == [], f"set-based passed a record the validator rejects: {errors}\n{obj}"
        elif not lenient and not _nonfinite(obj):
            assert errors, f"set-based failed a record the validator accepts:\n{obj}"


def test_generated_cohort_passes_set_based(checker):
    """Every record of a generated cohort is valid, and certainly so for the set-based check."""
    verdicts = _verdicts(checker, BASE)
    assert all(not validate_record(r) for r in BASE)
    assert all(verdicts)


def test_nan_hidden_by_canonical_form_is_left_to_python(checker):
    """orjson writes NaN as null; a record whose bmi is NaN must not pass as if bmi were null."""
    rec = copy.deepcopy(BASE[0])
    rec["patient"]["bmi"] = float("nan")
    assert validate_record(rec)
    assert _verdicts(checker, [rec]) == [False]
    rec["patient"]["bmi"] = None
    assert not validate_record(rec)
    assert _verdicts(checker, [rec]) == [True]


def test_whole_number_float_in_integer_field_is_left_to_python(checker):
    rec = copy.deepcopy(BASE[0])
    rec["patient"]["age_years"] = 40.0
    assert _verdicts(checker, [rec]) == [False]


# --------------------------------------------------------------------------- the compiled check
# The same contract compiled to Python (orchestration.contract.fastcheck), the one landing uses: a
# record it passes is landed without the validator. Soundness: validate_record finds no error and
# leaves the record as it is (what lands is what was validated). Agreement: it computes the unit
# conversion exactly as the validator does, so a lab value on a bound is no reason to differ; the
# forms it leaves to the validator are the whole-number floats, `true` for schema_version and
# non-finite numbers.


def _build_exact(spec):
    i, ms = spec
    rec = copy.deepcopy(BASE[i])
    lenient = False
    for m in ms:
        lenient |= apply(rec, m)
    return rec, lenient


def _types(x):
    if isinstance(x, dict):
        return {k: _types(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_types(v) for v in x]
    return type(x).__name__


def _fast_sound_and_agrees(obj, lenient) -> bool:
    before = copy.deepcopy(obj)
    certain = certainly_valid(obj, TODAY.year)
    assert obj == before and _types(obj) == _types(before), "the compiled check changed the record"
    errors = validate_record(obj)
    if certain:
        assert errors == [], f"the compiled check passed a record the validator rejects: {errors}\n{before}"
        assert obj == before and _types(obj) == _types(before), "the validator changed a record the compiled check passed"
    elif not lenient and not _nonfinite(before):
        assert errors, f"the compiled check failed a record the validator accepts:\n{before}"
    return certain


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=20, max_size=80))
def test_compiled_check_agrees_with_validate_record(specs):
    for spec in specs:
        _fast_sound_and_agrees(*_build_exact(spec))


def test_compiled_check_on_edge_cases():
    assert all(certainly_valid(r, TODAY.year) for r in BASE)
    base = BASE[0]
    lab = {"analyte": "calcium", "value": 2.2, "unit": "mmol/L", "day": 0}
    for obj, lenient in [
        ({**base, "schema_version": True}, True),
        ({**base, "schema_version": 1.0}, True),
        ({**base, "revision": 2.0}, True),
        ({**base, "patient": {**base["patient"], "age_years": 40.0}}, True),
        ({**base, "patient": {**base["patient"], "bmi": 25}}, False),
        ({**base, "patient": {**base["patient"], "bmi": 10 ** 400}}, False),
        ({**base, "patient": {**base["patient"], "bmi": 2 ** 63}}, False),
        ({**base, "case_id": "ABC\n"}, False),
        ({**base, "site_id": "UK-MAN\n"}, False),
        ({**base, "case_id": "ÄBC"}, False),
        ({**base, "citation": "é" * 500}, False),
        ({**base, "citation": "é" * 501}, False),
        ({**base, "index_year": TODAY.year}, False),
        ({**base, "index_year": TODAY.year + 1}, False),
        ({**base, "labs": [dict(lab, unit="MMOL/L")]}, False),
        ({**base, "labs": [dict(lab, unit=" mmol / L ")]}, False),
        ({**base, "labs": [dict(lab, unit="mmol/L\u00a0")]}, False),
        ({**base, "labs": [{k: v for k, v in lab.items() if k != "day"}]}, False),
        ({**base, "labs": [dict(lab, day=None)]}, False),
        ({**base, "labs": [dict(lab, ref_low=None, ref_high=None)]}, False),
        ({**base, "labs": [dict(lab, ref_low=3, ref_high=2.5)]}, False),
        ({**base, "labs": [dict(lab, value=True)]}, False),
        ({**base, "comorbidities": {"diabetes": 1}}, False),
        ({**base, "comorbidities": {"diabetes": None}}, False),
        ({**base, "comorbidities": {}}, False),
        ({**base, "lesions": [{"site": "face", "features": ["ulcer", 1]}]}, False),
        ({**base, "lesions": [{"site": "face", "features": [["ulcer"]]}]}, False),
        ({**base, "lesions": [{"site": "face", "features": []}]}, False),
        ({**base, "organs": [{"organ": "skin"}, {"organ": "skin"}]}, False),
        ({**base, "outcome": {"vital_status": "unknown"}}, False),
        ({**base, "outcome": {"vital_status": "alive", "followup_days": None}}, False),
        ({**base, "outcome": {"vital_status": "alive", "followup_days": 10, "cause_of_death": None}}, False),
        ({**base, "kidney": {"status": "ckd", "dialysis_modality": None}}, False),
        ([base], False),
        ("x", False),
    ]:
        _fast_sound_and_agrees(copy.deepcopy(obj), lenient)


def test_compiled_check_knows_every_field_and_refuses_what_it_cannot_compile():
    source = compiled_source()
    assert "not compiled" not in source
    for name in TOP_FIELDS + [k for ks in NESTED.values() for k in ks if ks is not NESTED["comorbidities"] and ks is not NESTED["exposures"]]:
        assert repr(name) in source, name

    class Odd(BaseModel):
        n: int = Field(multiple_of=2)

    with pytest.raises(fastcheck._Unsupported):
        fastcheck._Compiler().model(Odd, "o", 1)
