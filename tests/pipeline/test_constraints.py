"""The column rules of the tables with an enforced contract (not null, ranges, accepted values) are
DuckDB constraints, not dbt data tests (docs/marts.md): every declared constraint is in the
warehouse's DDL, and a row that breaks one fails the build, so nothing is published."""

from __future__ import annotations

import json
from collections import Counter

import duckdb
import pytest

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from tests.support import run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("constraints")]

KINDS = {"not_null": "NOT NULL", "check": "CHECK"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("constraints") / "home").ensure()
    cohort = write_jsonl(home.root.parent / "cohort.jsonl", list(generate_records(30, seed=16)))
    p = run_cli("submit", str(cohort), home=home)
    assert p.returncode == 0, p.stdout[-2000:]
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    return home


def _manifest(home: Home) -> dict:
    return json.loads((home.dbt_dir / "target" / "manifest.json").read_text())


def test_every_declared_constraint_is_in_the_warehouse_and_columns_keep_their_order(built):
    models = [n for n in _manifest(built)["nodes"].values() if n["resource_type"] == "model"]
    declared = Counter(
        (n["name"], KINDS[c["type"]], col["name"])
        for n in models for col in n["columns"].values() for c in col["constraints"]
    )
    # the rules converted from data tests are all there (65 when this was written)
    assert sum(declared.values()) >= 60
    assert ("dim_cases", "CHECK", "age_years") in declared and ("mart_survival", "NOT NULL", "survival") in declared
    assert all(n["config"]["contract"]["enforced"] and n["config"]["materialized"] != "view"
               for n in models if any(col["constraints"] for col in n["columns"].values()))
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        actual = Counter(
            (t, kind, cols[0]) for t, kind, cols in con.execute(
                "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                "WHERE schema_name = 'main' AND constraint_type IN ('NOT NULL', 'CHECK')"
            ).fetchall()
        )
        assert actual == declared
        for n in models:
            if n["config"]["contract"]["enforced"]:
                described = [r[0] for r in con.execute(f"DESCRIBE main.{n['name']}").fetchall()]
                assert described == list(n["columns"]), n["name"]
    finally:
        con.close()


def _set(home: Home, case_id: str, column: str, value) -> None:
    con = duckdb.connect(str(home.warehouse))
    try:
        con.execute(f"UPDATE raw.case_records SET {column} = ? WHERE case_id = ?", [value, case_id])
        con.execute("INSERT OR IGNORE INTO raw.pending_cases VALUES (?)", [case_id])
    finally:
        con.close()


def test_a_row_that_breaks_a_constraint_fails_the_build_and_publishes_nothing(built):
    published = built.published_current.resolve()
    con = duckdb.connect(str(built.warehouse), read_only=True)
    case_id, age, site = con.execute(
        "SELECT case_id, age_years, site_id FROM raw.case_records ORDER BY case_id LIMIT 1").fetchone()
    con.close()

    # out of range: dim_cases.age_years must be between 0 and 90 (a CHECK constraint)
    _set(built, case_id, "age_years", -1)
    p = run_cli("build", home=built)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "CHECK constraint failed" in out and "dim_cases" in out and "age_years" in out, out[-3000:]
    assert built.published_current.resolve() == published

    # missing: dim_cases.site_id must not be null (a NOT NULL constraint)
    _set(built, case_id, "age_years", age)
    _set(built, case_id, "site_id", None)
    p = run_cli("build", home=built)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "NOT NULL constraint failed" in out and "site_id" in out, out[-3000:]
    assert built.published_current.resolve() == published

    # repaired: the case is still pending, the next build recomputes and publishes it
    _set(built, case_id, "site_id", site)
    p = run_cli("build", home=built)
    assert p.returncode == 0, p.stdout + p.stderr
    con = duckdb.connect(str(built.published_current.resolve() / "registry.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT age_years, site_id FROM dim_cases WHERE case_id = ?", [case_id]).fetchone() == (
            min(age, 90), site)
    finally:
        con.close()


def test_a_warehouse_built_before_the_constraints_gets_them_at_the_next_build(built):
    """DuckDB cannot add a CHECK constraint to a table, and appended rows are checked only against the
    table's own constraints: an incremental table without its declared constraints is rebuilt once."""
    con = duckdb.connect(str(built.warehouse))
    try:
        before = con.execute("SELECT * FROM dim_cases ORDER BY case_id").fetchall()
        # the table as an older version of the project left it: same rows, no constraints
        con.execute("CREATE TABLE main.dim_cases_old AS FROM main.dim_cases")
        con.execute("DROP TABLE main.dim_cases")
        con.execute("ALTER TABLE main.dim_cases_old RENAME TO dim_cases")
        assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'dim_cases'").fetchone()[0] == 0
    finally:
        con.close()
    p = run_cli("build", home=built)
    assert p.returncode == 0, p.stdout + p.stderr
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        kinds = Counter(r[0] for r in con.execute(
            "SELECT constraint_type FROM duckdb_constraints() WHERE schema_name = 'main' AND table_name = 'dim_cases'").fetchall())
        declared = Counter(KINDS[c["type"]] for col in _manifest(built)["nodes"]["model.calciphylaxis_registry.dim_cases"]["columns"].values()
                           for c in col["constraints"])
        assert kinds == declared and kinds["CHECK"] >= 5
        assert con.execute("SELECT * FROM dim_cases ORDER BY case_id").fetchall() == before
    finally:
        con.close()
