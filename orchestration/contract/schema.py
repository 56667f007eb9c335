"""The published JSON Schema of case record v1, generated from the typed model.

The committed file ``orchestration/contract/case-record-v1.schema.json`` is what outside tools
validate against; ``tests/unit/test_contract_schema.py`` fails when it is stale
(regenerate with ``registry schema --write``). JSON Schema cannot express every rule of the contract:
units per analyte, hard limits in canonical units, days against follow-up and onset, and
fields allowed only for some statuses are checked by :mod:`.validate` and described here in
``$comment``.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.contract.model import CaseRecord

SCHEMA_PATH = Path(__file__).with_name("case-record-v1.schema.json")
SCHEMA_ID = "https://calciphylaxis-registry.invalid/schemas/case-record-v1.schema.json"

CROSS_FIELD_RULES = (
    "Also enforced by the registry's validator, beyond this schema: each lab unit must be accepted for its "
    "analyte (seeds/reference/analyte_units.csv, spelled as in seeds/reference/unit_spellings.csv: ASCII case, "
    "u/µ/μ, x/× and a space either side of '/' are free, nothing else); lab values within "
    "hard limits in canonical units (seeds/reference/analytes.csv); every day <= outcome.followup_days when known; "
    "lab and treatment days >= onset_day; ref_low <= ref_high; dialysis_modality and dialysis_vintage_months only "
    "when kidney.status is dialysis; outcome.followup_days required unless vital_status is unknown; "
    "cause_of_death only when dead; no organ twice; index_year not after the current year."
)


def build_schema() -> dict:
    schema = CaseRecord.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "$comment": CROSS_FIELD_RULES,
        **schema,
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path
