"""Every rule of case record v1 (shared/docs/case-record-v1.md) has a test: each broken rule yields
one error at the right JSON path, in words a coordinator understands; valid variants pass."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from orchestration.contract.validate import validate_record
from tests.support import MINIMAL, seed_case


def mutate(path: str, value):
    """Copy of MINIMAL with the field at a dotted path (list indices as numbers) set, or deleted with `...`."""
    r = copy.deepcopy(MINIMAL)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    cur = r
    for p in parts[:-1]:
        cur = cur[p]
    if value is ...:
        del cur[parts[-1]]
    else:
        cur[parts[-1]] = value
    return r


NEXT_YEAR = dt.date.today().year + 1

# (what is broken, field path to change, new value or ... to delete, expected error path, words expected in the message)
BROKEN = [
    ("schema_version missing", "schema_version", ..., "schema_version", "required"),
    ("schema_version 2", "schema_version", 2, "schema_version", "must be 1"),
    ("case_id missing", "case_id", ..., "case_id", "required"),
    ("case_id too short", "case_id", "ab", "case_id", "3 to 64"),
    ("case_id with a space", "case_id", "AB 123", "case_id", "letters, digits"),
    ("revision zero", "revision", 0, "revision", "below the minimum 1"),
    ("revision as text", "revision", "2", "revision", "whole number"),
    ("site_id lower case", "site_id", "de-test", "site_id", "capital letters"),
    ("site_id missing", "site_id", ..., "site_id", "required"),
    ("source unknown", "source", "twitter", "source", "accepted: registry_enrollment"),
    ("citation too long", "citation", "x" * 501, "citation", "500 characters"),
    ("index_year before 1950", "index_year", 1949, "index_year", "below the minimum 1950"),
    ("index_year in the future", "index_year", NEXT_YEAR, "index_year", "after the current year"),
    ("onset_day after day 0", "onset_day", 5, "onset_day", "above the maximum 0"),
    ("patient missing", "patient", ..., "patient", "required"),
    ("age above 120", "patient.age_years", 140, "patient.age_years", "140 is above the maximum 120"),
    ("age negative", "patient.age_years", -1, "patient.age_years", "below the minimum 0"),
    ("age as boolean", "patient.age_years", True, "patient.age_years", "whole number, not true"),
    ("age as text", "patient.age_years", "70", "patient.age_years", 'whole number, not "70"'),
    ("age as fraction", "patient.age_years", 70.5, "patient.age_years", "whole number"),
    ("age NaN", "patient.age_years", float("nan"), "patient.age_years", "NaN"),
    ("sex missing", "patient.sex", ..., "patient.sex", "required"),
    ("sex abbreviated", "patient.sex", "F", "patient.sex", "accepted: female, male, other, unknown"),
    ("bmi below 10", "patient.bmi", 5, "patient.bmi", "below the minimum 10"),
    ("bmi above 90", "patient.bmi", 95.5, "patient.bmi", "above the maximum 90"),
    ("kidney missing", "kidney", ..., "kidney", "required"),
    ("kidney status unknown word", "kidney.status", "esrd", "kidney.status", "accepted: dialysis"),
    ("dialysis modality without dialysis", "kidney", {"status": "ckd", "dialysis_modality": "hemodialysis"}, "kidney.dialysis_modality", 'only allowed when kidney.status is "dialysis"'),
    ("dialysis vintage without dialysis", "kidney", {"status": "transplant", "dialysis_vintage_months": 12}, "kidney.dialysis_vintage_months", "only allowed"),
    ("dialysis vintage negative", "kidney.dialysis_vintage_months", -3, "kidney.dialysis_vintage_months", "below the minimum 0"),
    ("dialysis modality unknown word", "kidney.dialysis_modality", "hdf", "kidney.dialysis_modality", "accepted: hemodialysis, peritoneal_dialysis"),
    ("comorbidity not in vocabulary", "comorbidities", {"gout": True}, "comorbidities.gout", "unknown comorbidity"),
    ("comorbidity as yes", "comorbidities", {"diabetes": "yes"}, "comorbidities.diabetes", "true, false or null"),
    ("comorbidity as 1", "comorbidities", {"diabetes": 1}, "comorbidities.diabetes", "true, false or null"),
    ("exposure not in vocabulary", "exposures", {"aspirin": True}, "exposures.aspirin", "unknown exposure"),
    ("diagnosis missing", "diagnosis", ..., "diagnosis", "required"),
    ("diagnosis basis missing", "diagnosis", {"day": 1}, "diagnosis.basis", "required"),
    ("diagnosis basis unknown word", "diagnosis.basis", "xray", "diagnosis.basis", "accepted: biopsy, autopsy, clinical"),
    ("diagnosis after follow-up", "diagnosis.day", 150, "diagnosis.day", "after the end of follow-up"),
    ("lesion site unknown", "lesions", [{"site": "knee"}], "lesions[0].site", "accepted: abdomen"),
    ("lesion site missing", "lesions", [{"laterality": "left"}], "lesions[0].site", "required"),
    ("lesion laterality unknown", "lesions", [{"site": "thigh", "laterality": "both"}], "lesions[0].laterality", "accepted: left"),
    ("lesion feature unknown", "lesions", [{"site": "thigh", "features": ["ulcer", "rash"]}], "lesions[0].features[1]", "accepted: livedo"),
    ("organs missing", "organs", ..., "organs", "required"),
    ("organs empty", "organs", [], "organs", "at least one organ"),
    ("organ unknown", "organs", [{"organ": "toe"}], "organs[0].organ", "accepted: skin"),
    ("organ evidence unknown", "organs", [{"organ": "skin", "evidence": "rumour"}], "organs[0].evidence", "accepted: histology"),
    ("organ twice", "organs", [{"organ": "skin"}, {"organ": "lung"}, {"organ": "skin"}], "organs[2].organ", "listed twice"),
    ("lab analyte unknown", "labs.0.analyte", "magnesium", "labs[0].analyte", "not an accepted value"),
    ("lab unit not accepted", "labs", [{"analyte": "pthrp", "value": 3, "unit": "pmol/L"}], "labs[0].unit", '"pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)'),
    ("lab unit missing", "labs", [{"analyte": "calcium", "value": 9}], "labs[0].unit", "required"),
    ("lab value missing", "labs", [{"analyte": "calcium", "unit": "mg/dL"}], "labs[0].value", "required"),
    ("lab value NaN", "labs.0.value", float("nan"), "labs[0].value", "finite number"),
    ("lab value Infinity", "labs.0.value", float("inf"), "labs[0].value", "finite number"),
    ("lab value as boolean", "labs.0.value", False, "labs[0].value", "must be a number, not false"),
    ("lab value as text", "labs.0.value", "2.2", "labs[0].value", "must be a number"),
    ("lab above hard limit", "labs", [{"analyte": "calcium", "value": 9, "unit": "mmol/L"}], "labs[0].value", "above the physiologically possible maximum of 30 mg/dL"),
    ("lab below hard limit", "labs", [{"analyte": "albumin", "value": 2, "unit": "g/L"}], "labs[0].value", "below the physiologically possible minimum"),
    ("lab range reversed", "labs", [{"analyte": "calcium", "value": 9, "unit": "mg/dL", "ref_low": 10.2, "ref_high": 8.4}], "labs[0].ref_low", "above ref_high"),
    ("lab after follow-up", "labs.0.day", 101, "labs[0].day", "after the end of follow-up (outcome.followup_days is 100)"),
    ("lab before onset", "labs", [{"analyte": "calcium", "value": 9, "unit": "mg/dL", "day": -40}], "labs[0].day", "before symptom onset"),
    ("treatment unknown", "treatments", [{"treatment": "magic"}], "treatments[0].treatment", "accepted: sodium_thiosulfate"),
    ("treatment after follow-up", "treatments.0.day", 200, "treatments[0].day", "after the end of follow-up"),
    ("treatment before onset", "treatments", [{"treatment": "wound_care", "day": -31}], "treatments[0].day", "before symptom onset (onset_day is -30)"),
    ("outcome missing", "outcome", ..., "outcome", "required"),
    ("vital status unknown word", "outcome.vital_status", "deceased", "outcome.vital_status", "accepted: alive, dead, unknown"),
    ("follow-up missing when dead", "outcome", {"vital_status": "dead"}, "outcome.followup_days", "required when vital status is \"dead\""),
    ("follow-up missing when alive", "outcome", {"vital_status": "alive"}, "outcome.followup_days", "required when vital status is \"alive\""),
    ("follow-up negative", "outcome.followup_days", -1, "outcome.followup_days", "below the minimum 0"),
    ("cause of death when alive", "outcome", {"vital_status": "alive", "followup_days": 100, "cause_of_death": "sepsis"}, "outcome.cause_of_death", 'only allowed when vital status is "dead"'),
    ("cause of death unknown word", "outcome.cause_of_death", "old age", "outcome.cause_of_death", "accepted: calciphylaxis"),
    ("autopsy as yes", "outcome.autopsy", "yes", "outcome.autopsy", "true, false or null"),
    ("wound healing unknown word", "outcome.wound_healing", "healed", "outcome.wound_healing", "accepted: complete"),
    ("name field", "name", "Jane Doe", "name", "unknown field (identifiers are not accepted)"),
    ("mrn field", "mrn", "123456", "mrn", "identifiers are not accepted"),
    ("patient name", "patient.name", "Jane", "patient.name", "identifiers are not accepted"),
    ("date of birth", "patient.date_of_birth", "1950-01-02", "patient.date_of_birth", "identifiers are not accepted"),
    ("admission date", "admission_date", "2020-01-02", "admission_date", "not accepted"),
    ("stray field", "notes", "free text", "notes", "unknown field"),
]


@pytest.mark.parametrize("what,path,value,error_path,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_rule_is_reported_at_its_path(what, path, value, error_path, words):
    rec = mutate(path, value)
    if "before onset" in what:
        rec["onset_day"] = -30
    errors = validate_record(rec)
    assert errors, f"{what}: accepted"
    at_path = [e for e in errors if e.path == error_path]
    assert at_path, f"{what}: no error at {error_path}; got {[str(e) for e in errors]}"
    assert any(words in e.message for e in at_path), f"{what}: {[str(e) for e in at_path]}"
    # one message per broken rule: the mutated field is not reported twice
    assert len(at_path) == 1, [str(e) for e in at_path]


def test_all_errors_of_a_record_are_reported_at_once():
    rec = mutate("patient.age_years", 140)
    rec["name"] = "x"
    rec["labs"] = [{"analyte": "pthrp", "value": 3, "unit": "pmol/L"}]
    rec["organs"] = [{"organ": "skin"}, {"organ": "skin"}]
    paths = {e.path for e in validate_record(rec)}
    assert {"patient.age_years", "name", "labs[0].unit", "organs[1].organ"} <= paths


VALID = [
    ("minimal record", lambda r: r),
    ("seed case", lambda r: seed_case()),
    ("revision absent defaults to 1", lambda r: (r.pop("revision", None), r)[1]),
    ("unknown vital status without follow-up", lambda r: {**r, "outcome": {"vital_status": "unknown"}, "treatments": [], "diagnosis": {"basis": "clinical"}}),
    ("null means unknown in tri-state maps", lambda r: {**r, "comorbidities": {"diabetes": None, "obesity": False}, "exposures": {"warfarin": None}}),
    ("null for optional fields", lambda r: {**r, "index_year": None, "citation": None, "patient": {"age_years": 50, "sex": "male", "bmi": None}}),
    ("age 120", lambda r: {**r, "patient": {"age_years": 120, "sex": "other"}}),
    ("value far outside the reference range is data", lambda r: {**r, "labs": [{"analyte": "calcium", "value": 18, "unit": "mg/dL"}]}),
    ("lab day defaults to 0 and may precede day 0", lambda r: {**r, "onset_day": -10, "labs": [{"analyte": "calcium", "value": 9, "unit": "mg/dL"}, {"analyte": "calcium", "value": 9, "unit": "mg/dL", "day": -5}]}),
]

UNIT_SPELLINGS = [
    ("calcium", "MG/DL"), ("calcium", "mmol/l"), ("calcium", "mEq/L"), ("calcium", " mg / dL "),
    ("creatinine", "µmol/L"), ("creatinine", "μmol/L"), ("creatinine", "umol/L"), ("creatinine", "UMOL/L"),
    ("platelets", "10^3/uL"), ("platelets", "10^3/mm3"), ("platelets", "K/uL"), ("platelets", "10^9/L"),
    ("platelets", "x10^9/L"), ("wbc", "/mm3"), ("alkaline_phosphatase", "µkat/L"), ("pth_intact", "pmol/L"),
    ("pth_intact", "ng/L"), ("albumin", "g/L"), ("hematocrit", "L/L"), ("vitamin_d_25oh", "nmol/L"),
]


@pytest.mark.parametrize("what,make", VALID, ids=[v[0] for v in VALID])
def test_valid_records_pass(what, make):
    assert validate_record(make(copy.deepcopy(MINIMAL))) == []


@pytest.mark.parametrize("analyte,unit", UNIT_SPELLINGS)
def test_units_match_ignoring_case_spaces_and_micro_signs(analyte, unit):
    rec = copy.deepcopy(MINIMAL)
    value = {"wbc": 8000, "hematocrit": 0.3, "alkaline_phosphatase": 2, "platelets": 200, "creatinine": 300, "albumin": 30}.get(analyte, 2)
    rec["labs"] = [{"analyte": analyte, "value": value, "unit": unit}]
    assert validate_record(rec) == []


def test_a_record_that_is_not_an_object():
    assert [str(e) for e in validate_record([1, 2])] == ["$: a case record must be a JSON object, not a list"]
