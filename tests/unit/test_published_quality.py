"""The published quality tables judge a rejected case_id by the contract's own pattern, and the
validator does not repeat a value that failed an identifier's pattern."""

from __future__ import annotations

import yaml

from orchestration.config import DBT_PROJECT_DIR
from orchestration.contract.model import CaseRecord
from orchestration.contract.validate import validate_record
from tests.support import record


def test_dbt_uses_the_contracts_case_id_pattern():
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    pattern = next(m.pattern for m in CaseRecord.model_fields["case_id"].metadata if hasattr(m, "pattern"))
    assert project["vars"]["case_id_pattern"] == pattern


def test_a_value_failing_an_identifier_pattern_is_not_repeated():
    errors = validate_record(record(case_id="Mueller, Hans 1950-01-02", site_id="Klinik Dr. Weber"))
    assert {e.path for e in errors} == {"case_id", "site_id"}
    for e in errors:
        assert "Mueller" not in e.message and "Weber" not in e.message and e.message.startswith("must be")
