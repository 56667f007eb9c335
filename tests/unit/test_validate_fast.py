"""The validator's fast gate (a TypedDict twin of the pydantic model, checked without building the
model's instances) never changes a verdict: on thousands of generated valid and broken records
(the mutations of the set-based differential test), validate_record with the gate returns the
same errors, in the same order, and leaves the record in the same (normalised) state as without it."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.contract.validate import _validate
from tests.unit.test_setbased_differential import BASE, _build, records

EXTRA = [
    {**BASE[0], "schema_version": True},
    {**BASE[0], "schema_version": 1.0},
    {**BASE[0], "revision": 2.0},
    {**BASE[0], "patient": {**BASE[0]["patient"], "age_years": 40.0}},
    {**BASE[0], "patient": {**BASE[0]["patient"], "age_years": True}},
    {**BASE[0], "patient": {**BASE[0]["patient"], "bmi": float("nan")}},
    {**BASE[0], "patient": {**BASE[0]["patient"], "bmi": 25}},
    {**BASE[0], "case_id": "x" * 65},
    {**BASE[0], "labs": [{"analyte": "calcium", "value": 2.2, "unit": "mmol/L", "day": 0.0}]},
    {**BASE[0], "labs": [{"analyte": "calcium", "value": 2.2, "unit": ""}]},
    {**BASE[0], "comorbidities": {"diabetes": 1}},
    {**BASE[0], "organs": []},
    {**BASE[0], "lesions": [{"site": "face", "features": ["ulcer", "nope"]}]},
    {**{k: v for k, v in BASE[0].items() if k != "outcome"}},
]


def _same(obj) -> None:
    a, b = copy.deepcopy(obj), copy.deepcopy(obj)
    assert _validate(a, fast=True) == _validate(b, fast=False), obj
    assert a == b and [type(x) for x in _leaves(a)] == [type(x) for x in _leaves(b)]


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def test_fast_gate_on_generated_records_and_edge_cases():
    for obj in BASE + EXTRA:
        _same(obj)


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=20, max_size=60))
def test_fast_gate_never_changes_a_verdict(specs):
    for spec in specs:
        _same(_build(spec)[0])
