"""Small FHIR R4 bundles for the FHIR import tests: a complete case, and helpers to change it."""

from __future__ import annotations

import copy
import json
from typing import Any

SCT = "http://snomed.info/sct"
CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"
PAT = "Patient/p1"

MRN = "MRN-88412-Q"
FAMILY = "Quackenbush"
GIVEN = "Philippa"
PHONE = "+44 7700 900418"
STREET = "42 Wallaby Way"


def cc(*codings: tuple[str, str, str], text: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"coding": [{"system": s, "code": c, **({"display": disp} if disp else {})} for s, c, disp in codings]}
    if text:
        d["text"] = text
    return d


def ver(code: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": code}]}


def patient(**changes) -> dict[str, Any]:
    p = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": "urn:example:mrn", "value": MRN}],
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "telecom": [{"system": "phone", "value": PHONE}],
        "address": [{"line": [STREET], "city": "Sydney", "postalCode": "2000"}],
        "gender": "female",
        "birthDate": "1951-03-20",
        "deceasedDateTime": "2021-05-30T08:00:00+02:00",
    }
    for k, v in changes.items():
        if v is ...:
            p.pop(k, None)
        else:
            p[k] = v
    return p


def encounter(start="2021-03-10T09:00:00+01:00", id="e1", cls="IMP") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "subject": {"reference": PAT},
        "period": {"start": start},
    }


def condition(id: str, code: dict[str, Any], **extra) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": id, "subject": {"reference": PAT}, "code": code, **extra}


def calciphylaxis(**extra) -> dict[str, Any]:
    fields = {
        "verificationStatus": ver("confirmed"),
        "onsetDateTime": "2021-02-24",
        "bodySite": [cc((SCT, "39937001", "Skin structure")), cc((SCT, "68367000", "Thigh structure"))],
    }
    fields.update(extra)
    return condition("c-calci", cc((SCT, "237900002", "Calciphylaxis")), **fields)


def observation(id: str, loinc: str, value, code: str | None, *, unit: str | None = None, date="2021-03-11", low=None, high=None, system=UCUM, display="") -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if code is not None:
        q["system"] = system
        q["code"] = code
    if unit is not None:
        q["unit"] = unit
    o: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": cc((LOINC, loinc, display)),
        "subject": {"reference": PAT},
        "valueQuantity": q,
    }
    if date is not None:
        o["effectiveDateTime"] = date
    if low is not None or high is not None:
        rr = {}
        if low is not None:
            rr["low"] = {"value": low, **({"system": system, "code": code} if code else {})}
        if high is not None:
            rr["high"] = {"value": high, **({"system": system, "code": code} if code else {})}
        o["referenceRange"] = [rr]
    return o


def procedure(id: str, code: dict[str, Any], date: str | None = None, **extra) -> dict[str, Any]:
    p = {"resourceType": "Procedure", "id": id, "status": "completed", "subject": {"reference": PAT}, "code": code, **extra}
    if date:
        p["performedDateTime"] = date
    return p


def med_request(id: str, code: dict[str, Any], authored: str | None = None) -> dict[str, Any]:
    m = {"resourceType": "MedicationRequest", "id": id, "status": "completed", "intent": "order", "subject": {"reference": PAT}, "medicationCodeableConcept": code}
    if authored:
        m["authoredOn"] = authored
    return m


def complete_resources() -> list[dict[str, Any]]:
    """A complete case: day 0 is 2021-03-10 (admission), death on day 81."""
    return [
        patient(),
        encounter(),
        calciphylaxis(),
        condition("c-eskd", cc((CM, "N18.6", "End stage renal disease")), verificationStatus=ver("confirmed")),
        condition("c-dial", cc((CM, "Z99.2", "Dependence on renal dialysis"))),
        condition("c-dm", cc((CM, "E11.9", "Type 2 diabetes mellitus without complications"))),
        condition("c-warf", cc((CM, "I10", "Essential (primary) hypertension")), verificationStatus=ver("refuted")),
        procedure("pr-bx", cc((SCT, "240977001", "Biopsy of skin")), "2021-03-12", bodySite=[cc((SCT, "39937001", "Skin structure"))]),
        procedure("pr-hd", cc((SCT, "302497006", "Hemodialysis"))),
        med_request("m-sts", cc((ATC, "V03AB06", "sodium thiosulfate")), "2021-03-13"),
        observation("o-ca", "17861-6", 9.1, "mg/dL", low=8.5, high=10.5),
        observation("o-plt", "777-3", 210, "10*3/uL"),
    ]


def bundle(resources: list[dict[str, Any]], type: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": type, "entry": [{"fullUrl": f"urn:uuid:{r['resourceType'].lower()}-{r.get('id', i)}", "resource": r} for i, r in enumerate(resources)]}


def data(resources: list[dict[str, Any]], type: str = "collection") -> bytes:
    return json.dumps(bundle(copy.deepcopy(resources), type)).encode()


def replace(resources: list[dict[str, Any]], rid: str, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for r in resources:
        if r.get("id") == rid:
            if new is not None:
                out.append(new)
        else:
            out.append(r)
    return out
