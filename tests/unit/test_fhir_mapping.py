"""FHIR R4 bundle -> contract-v1 record: each resource type, UCUM units, missing facts, broken bundles."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from orchestration.contract.formats.fhir import classify, convert_bundle
from orchestration.contract.validate import validate_record
from tests.unit.fhir_bundles import (
    ATC,
    CM,
    FAMILY,
    LOINC,
    MRN,
    SCT,
    calciphylaxis,
    cc,
    complete_resources,
    condition,
    data,
    encounter,
    med_request,
    observation,
    patient,
    procedure,
    replace,
    ver,
)

KEY = b"0123456789abcdef0123456789abcdef"


def convert(resources, **kw):
    kw.setdefault("site_id", "DE-TEST")
    kw.setdefault("case_id_key", KEY)
    return convert_bundle(data(resources), **kw)


def paths(conv) -> list[str]:
    return [e.path for e in conv.errors]


# --------------------------------------------------------------------------- a complete case


def test_complete_bundle_gives_a_valid_record():
    c = convert(complete_resources())
    assert c.errors == []
    assert validate_record(c.record) == []
    r = c.record
    assert r["index_year"] == 2021
    assert r["patient"] == {"sex": "female", "age_years": 69}  # born 1951-03-20, day 0 2021-03-10: birthday not yet reached
    assert r["onset_day"] == -14
    assert r["kidney"] == {"status": "dialysis", "dialysis_modality": "hemodialysis"}
    assert r["comorbidities"] == {"diabetes": True, "hypertension": False}  # refuted hypertension is a known "no"
    assert r["diagnosis"] == {"basis": "biopsy", "day": 2}
    assert r["organs"] == [{"organ": "skin", "evidence": "histology"}]
    assert r["lesions"] == [{"site": "thigh"}]
    # chronic hemodialysis is the kidney status, not a treatment; thiosulfate on day 3 is
    assert r["treatments"] == [{"treatment": "sodium_thiosulfate", "day": 3}]
    assert r["outcome"] == {"vital_status": "dead", "followup_days": 81}


# --------------------------------------------------------------------------- Patient


def test_age_counts_whole_years_to_day_zero():
    res = replace(complete_resources(), "p1", patient(birthDate="1951-03-10"))
    assert convert(res).record["patient"]["age_years"] == 70  # birthday on day 0


def test_deceased_boolean_without_date_names_the_missing_follow_up():
    res = replace(complete_resources(), "p1", patient(deceasedDateTime=..., deceasedBoolean=True))
    c = convert(res)
    assert c.record["outcome"]["vital_status"] == "dead"
    assert "Patient.deceasedBoolean" in paths(c)
    assert "outcome.followup_days" in " ".join(e.message for e in c.errors)


def test_living_patient_follow_up_is_the_last_dated_event():
    res = replace(complete_resources(), "p1", patient(deceasedDateTime=..., deceasedBoolean=False))
    c = convert(res)
    assert c.errors == []
    assert c.record["outcome"] == {"vital_status": "alive", "followup_days": 3}  # thiosulfate on day 3


def test_missing_facts_are_not_invented_each_is_named():
    res = replace(complete_resources(), "p1", patient(gender=..., birthDate=..., deceasedDateTime=...))
    res = replace(res, "c-eskd", None)
    res = replace(res, "c-dial", None)
    res = replace(res, "pr-bx", None)
    c = convert(res)
    got = paths(c)
    for p in ("Patient.gender", "Patient.birthDate", "Patient.deceased[x]", "Procedure", "Condition"):
        assert p in got, (p, got)
    text = " ".join(e.message for e in c.errors)
    for fact in ("patient.sex", "patient.age_years", "outcome.vital_status", "diagnosis.basis", "kidney.status"):
        assert fact in text
    r = c.record
    assert "sex" not in r["patient"] and "age_years" not in r["patient"]
    assert "status" not in r["kidney"] and "basis" not in r["diagnosis"]
    assert "vital_status" not in r["outcome"]
    assert {"patient.sex", "patient.age_years", "kidney.status", "diagnosis.basis", "outcome.vital_status"} <= c.explained


# --------------------------------------------------------------------------- Encounter and day 0


def test_day_zero_is_the_admission_unless_an_index_date_is_given():
    res = complete_resources() + [encounter("2021-01-05", id="e0", cls="AMB")]  # an earlier outpatient visit
    c = convert(res)
    assert c.record["onset_day"] == -14  # still the inpatient admission of 2021-03-10
    c = convert(res, index_date=dt.date(2021, 3, 1))
    assert c.record["onset_day"] == -5 and c.record["outcome"]["followup_days"] == 90


def test_the_encounter_of_the_calciphylaxis_condition_wins():
    res = replace(complete_resources(), "c-calci", calciphylaxis(encounter={"reference": "Encounter/e2"}))
    res.append(encounter("2021-02-27T10:00:00Z", id="e2", cls="EMER"))
    res.append(encounter("2021-02-01", id="e3", cls="IMP"))
    assert convert(res).record["onset_day"] == -3


def test_no_encounter_and_no_index_date_is_an_error():
    c = convert(replace(complete_resources(), "e1", None))
    assert "Encounter" in paths(c)
    assert "--index-date" in " ".join(e.message for e in c.errors)


def test_partial_dates_are_reported_not_rounded():
    res = replace(complete_resources(), "p1", patient(birthDate="1951"))
    c = convert(res)
    assert "Patient.birthDate" in paths(c)
    assert "age_years" not in c.record["patient"]


# --------------------------------------------------------------------------- Condition


@pytest.mark.parametrize(
    "code, recognised",
    [
        (cc((SCT, "237900002", "Calciphylaxis")), True),
        (cc((CM, "E83.59", "Other disorders of calcium metabolism"), text="Calciphylaxis of both thighs"), True),
        (cc((CM, "E83.59", "Other disorders of calcium metabolism")), False),  # not specific without the text
        (cc(("urn:local", "X1", "Calcific uremic arteriolopathy")), True),
        ({"text": "calciphylaxis"}, True),
        (cc((SCT, "14669001", "Acute kidney injury")), False),
    ],
)
def test_calciphylaxis_code_list(code, recognised):
    from fhir.resources.R4B.codeableconcept import CodeableConcept

    assert bool(classify(CodeableConcept.model_validate(code), "calciphylaxis")) is recognised


def test_bundle_without_calciphylaxis_is_an_error():
    c = convert(replace(complete_resources(), "c-calci", None))
    assert "Condition" in paths(c)
    assert "calciphylaxis" in c.errors[0].message


@pytest.mark.parametrize(
    "conditions, status",
    [
        ([cc((CM, "N17.9", "Acute kidney failure, unspecified"))], "aki"),
        ([cc((SCT, "14669001", "Acute kidney injury"))], "aki"),
        ([cc((CM, "N18.4", "Chronic kidney disease, stage 4 (severe)"))], "ckd"),
        ([cc((CM, "N18.6", "End stage renal disease")), cc((CM, "Z99.2", "Dependence on renal dialysis"))], "dialysis"),
        ([cc((CM, "Z94.0", "Kidney transplant status")), cc((CM, "N18.3", "CKD stage 3"))], "transplant"),
        ([cc((CM, "N17.9", "AKI")), cc((CM, "N18.3", "CKD stage 3"))], "aki"),
    ],
)
def test_kidney_status(conditions, status):
    res = [r for r in complete_resources() if r["id"] not in ("c-eskd", "c-dial", "pr-hd")]
    res += [condition(f"k{i}", code) for i, code in enumerate(conditions)]
    c = convert(res)
    assert c.record["kidney"]["status"] == status, c.errors


def test_end_stage_disease_alone_does_not_choose_a_status():
    res = [r for r in complete_resources() if r["id"] not in ("c-dial", "pr-hd")]
    c = convert(res)
    assert "status" not in c.record["kidney"]
    assert "Condition/c-eskd.code" in paths(c)


def test_body_sites_give_organs_and_lesion_sites():
    sites = [cc((SCT, "39607008", "Lung structure")), cc((SCT, "30021000", "Lower leg structure")), cc((SCT, "123", "Some other structure"))]
    c = convert(replace(complete_resources(), "c-calci", calciphylaxis(bodySite=sites)))
    assert [o["organ"] for o in c.record["organs"]] == ["lung", "skin"]  # a lesion site is on the skin
    assert c.record["lesions"] == [{"site": "lower_leg"}]
    assert any("bodySite[2]" in n and "123" in n for n in c.notices)


def test_entered_in_error_and_unconfirmed_conditions_are_not_facts():
    res = complete_resources() + [
        condition("c-x", cc((CM, "E66.9", "Obesity, unspecified")), verificationStatus=ver("entered-in-error")),
        condition("c-y", cc((CM, "C50.9", "Breast cancer")), verificationStatus=ver("provisional")),
    ]
    c = convert(res)
    assert "obesity" not in c.record["comorbidities"] and "malignancy" not in c.record["comorbidities"]


# --------------------------------------------------------------------------- Observation and UCUM


@pytest.mark.parametrize(
    "loinc, ucum, analyte, unit",
    [
        ("777-3", "10*3/uL", "platelets", "10^3/µL"),
        ("6690-2", "10*9/L", "wbc", "10^9/L"),
        ("2160-0", "umol/L", "creatinine", "µmol/L"),
        ("17861-6", "meq/L", "calcium", "mEq/L"),
        ("6768-6", "[IU]/L", "alkaline_phosphatase", "U/L"),
        ("2000-8", "mmol/L", "calcium", "mmol/L"),  # a second LOINC code of the same analyte
    ],
)
def test_ucum_codes_map_to_the_contracts_units(loinc, ucum, analyte, unit):
    res = replace(complete_resources(), "o-plt", observation("o-x", loinc, 5, ucum))
    c = convert(res)
    lab = c.record["labs"][1]
    assert (lab["analyte"], lab["unit"]) == (analyte, unit)
    assert validate_record(c.record) == []


def test_observation_value_range_and_day():
    c = convert(complete_resources())
    assert c.record["labs"][0] == {"analyte": "calcium", "value": 9.1, "unit": "mg/dL", "day": 1, "ref_low": 8.5, "ref_high": 10.5}


def test_unmapped_observation_is_reported_with_code_and_display():
    res = complete_resources() + [observation("o-ferritin", "2276-4", 800, "ng/mL", display="Ferritin [Mass/volume] in Serum or Plasma")]
    c = convert(res)
    assert c.errors == []
    assert any(n.startswith("Observation/o-ferritin.code") and "2276-4" in n and "Ferritin" in n for n in c.notices)


def test_observation_problems_are_errors_in_fhir_coordinates():
    res = complete_resources() + [
        observation("o-nodate", "2160-0", 6.1, "mg/dL", date=None),
        {**observation("o-bound", "2731-8", 5, "pg/mL"), "valueQuantity": {"value": 5, "comparator": "<", "system": "http://unitsofmeasure.org", "code": "pg/mL"}},
    ]
    c = convert(res)
    got = paths(c)
    assert "Observation/o-nodate.effective[x]" in got
    assert "Observation/o-bound.valueQuantity.comparator" in got


def test_cause_of_death_observation():
    res = complete_resources() + [
        {"resourceType": "Observation", "id": "o-cod", "status": "final", "code": cc((LOINC, "69453-9", "Cause of death")), "valueCodeableConcept": cc((SCT, "91302008", "Sepsis"))}
    ]
    assert convert(res).record["outcome"]["cause_of_death"] == "sepsis"


# --------------------------------------------------------------------------- Procedure and medications


def test_procedures_and_medications_become_treatments():
    res = complete_resources() + [
        procedure("pr-ptx", cc((SCT, "13311008", "Parathyroidectomy")), "2021-03-20"),
        med_request("m-cina", cc((ATC, "H05BX01", "cinacalcet"))),
        {
            "resourceType": "MedicationStatement",
            "id": "ms-1",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/med-1"},
            "effectiveDateTime": "2021-03-15",
        },
        {"resourceType": "Medication", "id": "med-1", "code": cc(("http://www.nlm.nih.gov/research/umls/rxnorm", "4603", "furosemide 40 MG Oral Tablet"))},
        med_request("m-unknown", cc((ATC, "A02BC01", "omeprazole"))),
    ]
    c = convert(res)
    key = lambda t: (t["treatment"], t.get("day", -1))  # noqa: E731
    assert sorted(c.record["treatments"], key=key) == sorted(
        [
            {"treatment": "parathyroidectomy", "day": 10},
            {"treatment": "sodium_thiosulfate", "day": 3},
            {"treatment": "cinacalcet"},
            {"treatment": "loop_diuretic", "day": 5},
        ],
        key=key,
    )
    assert any("MedicationRequest/m-unknown" in n and "A02BC01" in n for n in c.notices)


def test_autopsy_is_the_basis_when_there_is_no_biopsy():
    res = replace(complete_resources(), "pr-bx", procedure("pr-aut", cc((SCT, "29240004", "Autopsy examination")), "2021-05-31"))
    c = convert(res)
    assert c.record["diagnosis"] == {"basis": "autopsy", "day": 82}
    assert c.record["outcome"]["autopsy"] is True


# --------------------------------------------------------------------------- identity


def test_case_id_is_a_keyed_hash_of_the_identifier():
    a = convert(complete_resources()).record["case_id"]
    assert a == convert(complete_resources()).record["case_id"]
    assert a.startswith("FHIR-") and MRN not in a
    assert convert(complete_resources(), case_id_key=b"another key of 32 bytes.........").record["case_id"] != a
    assert convert(complete_resources(), case_id="SITE-CASE-1").record["case_id"] == "SITE-CASE-1"


def test_no_identifier_needs_a_case_id():
    c = convert(replace(complete_resources(), "p1", patient(identifier=...)))
    assert "Patient.identifier" in paths(c) and "case_id" not in c.record


def test_resource_ids_that_carry_an_identifier_are_not_shown():
    res = complete_resources() + [observation(f"obs-{MRN}", "2276-4", 1, "ng/mL"), observation(f"{FAMILY.lower()}-7", "2160-0", 1, "mg/dL", date=None)]
    c = convert(res)
    text = json.dumps([str(e) for e in c.errors] + c.notices)
    assert MRN not in text and FAMILY.lower() not in text.lower()
    assert "Observation(Bundle.entry[" in text


def test_the_record_holds_no_identifying_text_or_date():
    c = convert(complete_resources())
    text = json.dumps(c.record)
    for s in (MRN, FAMILY, "Philippa", "Wallaby", "7700", "2021-", "1951"):
        assert s not in text


# --------------------------------------------------------------------------- broken bundles, R4 not R5


@pytest.mark.parametrize(
    "raw, path, words",
    [
        (b'{"resourceType": "Bundle", "type": "collection", "entry": [', "Bundle", "not valid JSON"),
        (b"\xff\xfe{}", "Bundle", "not UTF-8"),
        (b"", "Bundle", "empty"),
        (b'{"resourceType": "Patient"}', "Bundle.resourceType", "must be \"Bundle\""),
        (b'{"resourceType": "Bundle", "type": "document", "entry": []}', "Bundle.type", "collection, transaction, searchset"),
        (b'[1, 2]', "Bundle", "one FHIR Bundle"),
    ],
)
def test_unreadable_bundle(raw, path, words):
    c = convert_bundle(raw, site_id="DE-TEST", case_id_key=KEY)
    assert c.record is None
    assert c.errors[0].path == path and words in c.errors[0].message


def test_json_error_names_line_and_column():
    c = convert_bundle(b'{\n "resourceType": "Bundle",\n "type": collection\n}', site_id="DE-TEST", case_id_key=KEY)
    assert "line 3, column 10" in c.errors[0].message


def test_invalid_resource_is_reported_in_fhir_coordinates():
    bad = observation("o-bad", "2160-0", 1, "mg/dL")
    bad["valueQuantity"]["value"] = "six"
    c = convert(complete_resources() + [bad])
    assert any(p.startswith("Observation/o-bad.valueQuantity.value") for p in paths(c))
    assert "six" not in json.dumps([str(e) for e in c.errors])  # the input value is not echoed


def test_r4_bundles_are_read_with_r4_models_not_r5():
    # R4: MedicationStatement.status "completed" and medicationCodeableConcept (R5 has neither)
    ms = {
        "resourceType": "MedicationStatement",
        "id": "ms-r4",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": cc((ATC, "C03CA01", "furosemide")),
    }
    c = convert(complete_resources() + [ms])
    assert c.errors == [] and {"treatment": "loop_diuretic"} in c.record["treatments"]
    # the same resource in its R5 form is not R4
    r5 = {**{k: v for k, v in ms.items() if k != "medicationCodeableConcept"}, "status": "recorded", "medication": {"concept": cc((ATC, "C03CA01", "furosemide"))}}
    c = convert(complete_resources() + [r5])
    assert "MedicationStatement/ms-r4.medication" in paths(c)
    assert "R4" in next(e.message for e in c.errors if e.path == "MedicationStatement/ms-r4.medication")


def test_searchset_and_transaction_bundles_are_read():
    for kind in ("searchset", "transaction"):
        assert convert_bundle(data(complete_resources(), type=kind), site_id="DE-TEST", case_id_key=KEY).errors == []


def test_bmi_observation_gives_patient_bmi():
    bmi = observation("o-bmi", "39156-5", 31.4, "kg/m2")
    assert convert(complete_resources() + [bmi]).record["patient"]["bmi"] == 31.4


def test_end_stage_disease_with_a_dialysis_procedure_is_dialysis():
    res = replace(complete_resources(), "c-dial", None)  # N18.6 and a hemodialysis Procedure, no Z99.2
    c = convert(res)
    assert c.record["kidney"] == {"status": "dialysis", "dialysis_modality": "hemodialysis"}
    res = [r for r in complete_resources() if r["id"] not in ("c-eskd", "c-dial")]
    res.append(condition("k", {"text": "End-stage renal disease on hemodialysis"}))
    assert convert(res).record["kidney"]["status"] == "dialysis"


def _statement(id, code, status="active", start=None):
    ms = {"resourceType": "MedicationStatement", "id": id, "status": status, "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": code}
    if start:
        ms["effectivePeriod"] = {"start": start}
    return ms


def test_medications_before_day_zero_are_exposures():
    res = complete_resources() + [
        _statement("ms-warf", cc((ATC, "B01AA03", "warfarin")), start="2018-06-01"),
        _statement("ms-ca", {"text": "Calcium acetate 667 mg"}, start="2020-01-01"),
        _statement("ms-pred", cc((ATC, "H02AB06", "prednisolone")), status="not-taken"),
        _statement("ms-cina", cc((ATC, "H05BX01", "cinacalcet")), start="2021-03-12"),  # after day 0: a treatment
        _statement("ms-iron", cc((ATC, "B03AC02", "iron sucrose"))),  # no date: not known to be before day 0
    ]
    c = convert(res)
    assert c.record["exposures"] == {"warfarin": True, "calcium_based_binder": True, "corticosteroids": False}
    assert {"treatment": "cinacalcet", "day": 2} in c.record["treatments"]
    assert any("ms-iron" in n and "no date" in n for n in c.notices)


def test_resource_ids_with_dates_are_not_shown():
    c = convert(complete_resources() + [observation("creat-2021-03-11", "2160-0", 1, "mg/dL", date=None)])
    assert [e.path for e in c.errors] == ["Observation(Bundle.entry[12]).effective[x]"]


def test_every_code_list_row_maps_to_a_registry_code():
    from orchestration.contract.model import REF
    from orchestration.contract.reference import load_fhir_codes

    allowed = {
        "calciphylaxis": {"calciphylaxis"},
        "kidney": set(REF.codes("kidney_status")) | {"esrd"},
        "dialysis_modality": set(REF.codes("dialysis_modality")),
        "dialysis": {"dialysis"},
        "comorbidity": set(REF.codes("comorbidity")),
        "exposure": set(REF.codes("exposure")),
        "organ": set(REF.codes("organ")),
        "lesion_site": set(REF.codes("lesion_site")),
        "treatment": set(REF.codes("treatment")),
        "diagnosis_basis": {"biopsy", "autopsy"},
        "cause_of_death": set(REF.codes("cause_of_death")),
        "analyte": set(REF.analytes),
    }
    rows = load_fhir_codes()
    assert len(rows) > 200
    for r in rows:
        assert r.maps_to in allowed[r.kind], r
        assert r.match in ("exact", "prefix", "word") and (r.match == "word") == (r.system == "text"), r


def test_ucum_codes_are_unambiguous_per_analyte():
    from orchestration.contract.model import REF

    for a in REF.analytes.values():
        codes = [c for u in a.units for c in u.ucum]
        assert len(codes) == len(set(codes)), a.code
        assert a.units[0].ucum, f"{a.code}: its canonical unit has no UCUM code"


def test_living_patient_follow_up_counts_the_discharge():
    enc = encounter()
    enc["period"]["end"] = "2021-04-02T11:00:00+01:00"
    res = replace(replace(complete_resources(), "p1", patient(deceasedDateTime=..., deceasedBoolean=False)), "e1", enc)
    assert convert(res).record["outcome"] == {"vital_status": "alive", "followup_days": 23}


def test_days_are_counted_on_day_zeros_clock():
    res = replace(complete_resources(), "e1", encounter("2021-03-10T23:30:00-05:00"))
    res = replace(res, "o-plt", observation("o-plt", "777-3", 210, "10*3/uL", date="2021-03-11T04:35:00Z"))
    assert convert(res).record["labs"][1]["day"] == 0  # 23:35 in New York, the evening of admission


def test_dialysis_of_unknown_modality():
    generic = procedure("pr-hd", cc((SCT, "265764009", "Renal dialysis")))
    res = replace(replace(complete_resources(), "c-dial", None), "pr-hd", generic)  # ESKD + a dialysis of unknown kind
    c = convert(res)
    assert c.record["kidney"] == {"status": "dialysis"} and c.errors == []
    res = [r for r in complete_resources() if r["id"] not in ("c-eskd", "c-dial", "pr-hd")] + [
        condition("k", cc((CM, "N17.9", "AKI"))), generic]
    c = convert(res)
    assert c.record["kidney"] == {"status": "aki"} and "treatments" in c.record
    assert {"treatment": "sodium_thiosulfate", "day": 3} in c.record["treatments"] and len(c.record["treatments"]) == 1
    assert any("pr-hd" in n and "does not say hemodialysis" in n for n in c.notices)


def test_a_contained_medication_is_read():
    mr = {
        "resourceType": "MedicationRequest",
        "id": "m-c",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "contained": [{"resourceType": "Medication", "id": "med", "code": cc((ATC, "M05BA03", "pamidronic acid"))}],
        "medicationReference": {"reference": "#med"},
        "authoredOn": "2021-03-11",
    }
    assert {"treatment": "bisphosphonate", "day": 1} in convert(complete_resources() + [mr]).record["treatments"]
