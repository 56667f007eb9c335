"""When a build's data tests may look at the changed cases only (``orchestration/warehouse/tested.py``),
and that the dbt project's list of per-case tables is the list of tables rebuilt per case."""

from __future__ import annotations

import re

import duckdb
import pytest
import yaml

from orchestration.config import DBT_PROJECT_DIR, Home
from orchestration.warehouse import tested
from orchestration.warehouse.ingest import ensure_schema

FP = "seeds-models"


@pytest.fixture
def home(tmp_path) -> Home:
    h = Home(tmp_path / "home").ensure()
    con = duckdb.connect(str(h.warehouse))
    try:
        ensure_schema(con)
    finally:
        con.close()
    return h


def _sql(home: Home, *statements: str) -> None:
    con = duckdb.connect(str(home.warehouse))
    try:
        for s in statements:
            con.execute(s)
    finally:
        con.close()


def _changes(home: Home, *seqs: int) -> None:
    _sql(home, *(f"INSERT INTO raw.case_changes VALUES ('C-{s}', {s})" for s in seqs))


def test_the_first_run_on_a_warehouse_tests_every_row(home):
    _changes(home, 1)
    assert tested.changed_after(home, FP, published=1) is None


def test_a_passing_run_lets_the_next_one_test_only_later_changes(home):
    _changes(home, 1)
    assert tested.record_passed(home, FP, 1, tested.WHOLE) == 1
    _changes(home, 2)
    assert tested.changed_after(home, FP, published=2) == 1
    assert tested.changed_after(home, FP, published=1) == 1  # the snapshot may lag the list
    # nothing changed since the last passing run: no case to test
    assert tested.record_passed(home, FP, 2, "cases changed after build 1") == 2
    assert tested.changed_after(home, FP, published=2) == 2


def test_other_reference_tables_or_models_test_every_row(home):
    _changes(home, 1)
    tested.record_passed(home, FP, 1, tested.WHOLE)
    _changes(home, 2)
    assert tested.changed_after(home, "other-seeds-models", published=2) is None


def test_after_a_failing_run_whose_changes_were_dropped_every_row_is_tested(home):
    _changes(home, 1)
    tested.record_passed(home, FP, 1, tested.WHOLE)
    # build 2 failed its tests (nothing recorded); build 3 dropped the published changes of build 2
    _changes(home, 3)
    assert tested.changed_after(home, FP, published=2) is None
    # ... also when build 3 changed nothing, so that the list is empty
    _sql(home, "DELETE FROM raw.case_changes")
    assert tested.changed_after(home, FP, published=2) is None


def test_a_warehouse_older_than_the_tested_one_tests_every_row(home):
    tested.record_passed(home, FP, 5, tested.WHOLE)
    _sql(home, "DELETE FROM raw.case_changes")
    assert tested.changed_after(home, FP, published=3) is None


def test_a_warehouse_without_the_tables_tests_every_row(tmp_path):
    h = Home(tmp_path / "h").ensure()
    duckdb.connect(str(h.warehouse)).close()
    assert tested.changed_after(h, FP, published=None) is None


def test_per_case_models_are_the_models_rebuilt_per_case_and_the_views_over_them():
    listed = set(yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]["per_case_models"])
    per_case, views = set(), {}
    for path in (DBT_PROJECT_DIR / "models").rglob("*.sql"):
        sql = path.read_text()
        if "delete_pending_cases()" in sql:
            per_case.add(path.stem)
        elif "materialized='view'" in sql:
            views[path.stem] = set(re.findall(r"ref\('(\w+)'\)", sql))
    assert per_case, "no per-case model found"
    # a view reading only per-case tables (fct_lab_results) has per-case rows too; staging views do not
    per_case |= {v for v, refs in views.items() if refs and refs <= per_case}
    assert listed == per_case
