"""The committed JSON Schema is the typed model's, and agrees with the validator."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from orchestration.contract import schema
from orchestration.contract.reference import load, unit_key
from orchestration.contract.validate import validate_record
from tests.support import MINIMAL, seed_case


def test_committed_schema_is_not_stale():
    committed = json.loads(schema.SCHEMA_PATH.read_text())
    assert committed == schema.build_schema(), "the JSON Schema is stale: run `registry schema --write` and commit it"


def test_schema_accepts_what_the_validator_accepts():
    validator = jsonschema.Draft202012Validator(json.loads(schema.SCHEMA_PATH.read_text()))
    for rec in (MINIMAL, seed_case()):
        assert validate_record(rec) == []
        validator.validate(rec)


@pytest.mark.parametrize(
    "field,value",
    [("name", "Jane"), ("source", "twitter"), ("schema_version", 2), ("patient", {"age_years": True, "sex": "male"})],
)
def test_schema_rejects_what_the_validator_rejects(field, value):
    validator = jsonschema.Draft202012Validator(json.loads(schema.SCHEMA_PATH.read_text()))
    rec = copy.deepcopy(MINIMAL)
    rec[field] = value
    assert validate_record(rec)
    assert not validator.is_valid(rec)


def test_schema_vocabularies_come_from_the_reference_folder():
    text = schema.SCHEMA_PATH.read_text()
    ref = load()
    for vocab in ("organ", "treatment", "lesion_site", "comorbidity", "exposure"):
        for code in ref.codes(vocab):
            assert f'"{code}"' in text


def test_every_analyte_has_its_canonical_unit_with_factor_one():
    for a in load().analytes.values():
        factors = {unit_key(u.unit): u.factor for u in a.units}
        assert factors[unit_key(a.canonical_unit)] == 1.0, a.code
        assert unit_key(a.si_unit) in factors, a.code
        assert a.hard_min < a.hard_max
        if a.ref_low is not None and a.ref_high is not None:
            assert a.hard_min <= a.ref_low < a.ref_high <= a.hard_max, a.code
