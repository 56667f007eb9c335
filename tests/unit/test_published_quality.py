"""The published quality tables judge a rejected case_id by the contract's own pattern, and the
validator does not repeat a value that failed an identifier's pattern."""

from __future__ import annotations

import duckdb
import pytest
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


def _mask_sql(expr: str) -> str:
    macro = (DBT_PROJECT_DIR / "macros" / "published_text.sql").read_text()
    body = macro.split("{% macro mask_submitted_values(expr) -%}")[1].split("{%- endmacro %}")[0].strip()
    return body.replace("{{ expr }}", expr)


@pytest.mark.parametrize(
    "message, published",
    [
        ('"Hans Mueller" is not an accepted value (accepted: female, male)', '"…" is not an accepted value (accepted: female, male)'),
        ('is only allowed when kidney.status is "dialysis" (it is "Dr. \\"Weber\\"")', 'is only allowed when kidney.status is "dialysis" (it is "…")'),
        ('has the key "Mueller Hans" more than once (a key may appear once in an object)', 'has the key "…" more than once (a key may appear once in an object)'),
        ('"mg/ dL" is not accepted for calcium (accepted: mg/dL, mmol/L)', '"…" is not accepted for calcium (accepted: mg/dL, mmol/L)'),
        ("line 2 is not valid JSON: Expecting ',' delimiter at line 2, column 5", "line 2 is not valid JSON: Expecting ',' delimiter at line 2, column 5"),
        ("", ""),
    ],
)
def test_published_messages_mask_submitted_values(message, published):
    con = duckdb.connect()
    con.execute("CREATE TABLE q (errors STRUCT(path VARCHAR, message VARCHAR)[])")
    con.execute("INSERT INTO q VALUES ([{'path': 'x', 'message': ?}])", [message])
    # nested in the lambda over the errors list, as stg_quarantine.sql uses it
    (out,) = con.execute(f"SELECT list_transform(errors, lambda e: {_mask_sql('e.message')})[1] FROM q").fetchone()
    assert out == published
