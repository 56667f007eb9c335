"""One normalisation of lab units: the validator and dbt match a reported unit against the same
generated table (seeds/reference/unit_spellings.csv), exactly. Issue 15: a unit the validator
accepted but dbt could not convert stopped every later build."""

from __future__ import annotations

import duckdb
import pytest
from dbt_common.clients.agate_helper import from_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.config import DBT_PROJECT_DIR, REFERENCE_DIR
from orchestration.contract.reference import UNIT_SPELLINGS_FILE, generate_unit_spellings, load, unit_key
from orchestration.contract.validate import validate_record
from tests.support import record

SEED = REFERENCE_DIR / UNIT_SPELLINGS_FILE


def test_committed_unit_spellings_are_what_the_generator_makes():
    assert SEED.read_text(encoding="utf-8") == generate_unit_spellings(), (
        "seeds/reference/unit_spellings.csv is stale: run python -m orchestration.contract.reference --write"
    )


def test_dbt_joins_the_table_and_has_no_normaliser_of_its_own():
    sql = (DBT_PROJECT_DIR / "models" / "intermediate" / "int_labs_normalized.sql").read_text()
    assert "ref('unit_spellings')" in sql
    assert not (DBT_PROJECT_DIR / "macros" / "unit_key.sql").exists()


@pytest.mark.parametrize("unit", [" ", "\u00a0", "mg/\u00a0dL", "mg/dL\u2028", "mg/\x1fdL", "\u2003mg/dL", "mg/dl\t", "mg//dL", "ｍｇ/dL"])
def test_a_unit_outside_the_table_is_an_error_at_its_path(unit):
    errors = validate_record(record(labs=[{"analyte": "calcium", "value": 9, "unit": unit}]))
    assert [e.path for e in errors] == ["labs[0].unit"], errors


@pytest.mark.parametrize(
    "analyte, value, unit",
    [("calcium", 9, "MG/DL"), ("calcium", 9, "mg / dL"), ("calcium", 2.2, "mmol/l"), ("creatinine", 300, "umol/L"),
     ("creatinine", 300, "μmol/L"), ("creatinine", 300, "UMOL/L"), ("wbc", 8, "×10^9/L"), ("wbc", 8, "X10^9/l"), ("wbc", 8, "K/uL")],
)
def test_spellings_the_contract_accepts_still_pass(analyte, value, unit):
    assert validate_record(record(labs=[{"analyte": analyte, "value": value, "unit": unit}])) == []


def _seed_as_dbt_loads_it():
    """The seed read exactly as `dbt seed` reads it (agate), in a DuckDB table."""
    table = from_csv(str(SEED), text_columns=["spelling", "unit"])
    con = duckdb.connect()
    con.execute("CREATE TABLE unit_spellings (spelling VARCHAR, unit VARCHAR)")
    con.executemany("INSERT INTO unit_spellings VALUES (?, ?)", [tuple(r) for r in table.rows])
    return con


# The join of int_labs_normalized.sql, run directly in DuckDB on the seed.
_JOIN = "SELECT t.i, s.unit FROM unnest(?::VARCHAR[]) WITH ORDINALITY t(u, i) LEFT JOIN unit_spellings s ON s.spelling = t.u ORDER BY t.i"


def _sql_keys(con, units: list[str]) -> list[str | None]:
    return [u for _, u in con.execute(_JOIN, [units]).fetchall()]


def test_every_accepted_spelling_means_the_same_unit_in_python_and_in_dbt():
    con = _seed_as_dbt_loads_it()
    spellings = sorted(load().spellings)
    assert len(spellings) > 1000
    assert con.execute("SELECT count(*) FROM unit_spellings").fetchone()[0] == len(spellings)
    assert _sql_keys(con, spellings) == [unit_key(s) for s in spellings]
    listed = {u.unit for a in load().analytes.values() for u in a.units}
    assert set(load().spellings.values()) == listed


_spelling = st.sampled_from(sorted(load().spellings))
_mutated = st.tuples(_spelling, st.integers(0, 12), st.text(min_size=0, max_size=2)).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:])
_any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


_CON: list = []


@settings(max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_spelling, _mutated, _any_text), min_size=50, max_size=100))
def test_generated_units_mean_the_same_in_python_and_in_dbt(units):
    if not _CON:
        _CON.append(_seed_as_dbt_loads_it())
    assert _sql_keys(_CON[0], units) == [unit_key(u) for u in units]
    calcium = {u.unit for u in load().analytes["calcium"].units}
    for u in units:  # the validator accepts exactly the units the join converts
        errs = validate_record(record(labs=[{"analyte": "calcium", "value": 9 if unit_key(u) == "mg/dL" else 2.2, "unit": u}]))
        assert (unit_key(u) in calcium) == (errs == []), (u, errs)
