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
    assert tested.record(home, FP, 1, tested.WHOLE, passed=True) == 1
    _changes(home, 2)
    assert tested.changed_after(home, FP, published=2) == 1
    assert tested.changed_after(home, FP, published=1) == 1  # the snapshot may lag the list
    # nothing changed since the last passing run: no case to test
    assert tested.record(home, FP, 2, "cases changed after build 1", passed=True) == 2
    assert tested.changed_after(home, FP, published=2) == 2


def test_other_reference_tables_or_models_test_every_row(home):
    _changes(home, 1)
    tested.record(home, FP, 1, tested.WHOLE, passed=True)
    _changes(home, 2)
    assert tested.changed_after(home, "other-seeds-models", published=2) is None


def test_after_a_failing_run_every_row_is_tested_until_one_passes(home):
    _changes(home, 1)
    tested.record(home, FP, 1, tested.WHOLE, passed=True)
    _changes(home, 2)
    tested.record(home, FP, 2, "cases changed after build 1", passed=False)
    _changes(home, 3)
    assert tested.changed_after(home, FP, published=2) is None
    tested.record(home, FP, 3, tested.WHOLE, passed=False)  # the full run fails too
    assert tested.changed_after(home, FP, published=3) is None
    tested.record(home, FP, 3, tested.WHOLE, passed=True)
    _changes(home, 4)
    assert tested.changed_after(home, FP, published=3) == 3


def test_a_run_that_never_recorded_leaves_a_gap_and_every_row_is_tested(home):
    _changes(home, 1)
    tested.record(home, FP, 1, tested.WHOLE, passed=True)
    # build 2 was killed after publishing, before its tests; build 3 dropped the published changes of build 2
    _changes(home, 3)
    assert tested.changed_after(home, FP, published=2) is None
    # ... also when build 3 changed nothing, so that the list is empty
    _sql(home, "DELETE FROM raw.case_changes")
    assert tested.changed_after(home, FP, published=2) is None


def test_a_warehouse_older_than_the_tested_one_tests_every_row(home):
    tested.record(home, FP, 5, tested.WHOLE, passed=True)
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
        elif re.search(r"materialized\s*=\s*['\"]view['\"]", sql):
            views[path.stem] = set(re.findall(r"ref\('(\w+)'\)", sql))
    assert per_case, "no per-case model found"
    # a view reading only per-case tables (fct_lab_results) has per-case rows too; staging views do not
    per_case |= {v for v, refs in views.items() if refs and refs <= per_case}
    assert listed == per_case


def test_the_record_keeps_the_newest_runs(home, monkeypatch):
    monkeypatch.setattr(tested, "KEEP_RUNS", 3)
    for _ in range(5):
        tested.record(home, FP, 0, tested.WHOLE, passed=True)
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT list(run ORDER BY run) FROM raw.data_test_runs").fetchone()[0] == [3, 4, 5]
    finally:
        con.close()


def test_change_numbers_never_go_back_after_a_build_that_changed_nothing(home, monkeypatch):
    """The publisher's number for a snapshot (``changes_seq``) stays at the previous one when the
    list of changes is empty, so that clear_pending numbers the next changes after it."""
    import orchestration.warehouse.ingest as ingest_mod
    from orchestration.warehouse.publish import _changed_cases

    con = duckdb.connect(str(home.warehouse))
    try:
        assert _changed_cases(con, 7) == (7, 0)  # an empty list: still 7, not 0
        assert _changed_cases(con, None) == (0, 0)
    finally:
        con.close()
    _sql(home, "INSERT INTO raw.pending_cases VALUES ('C-new')")
    monkeypatch.setattr(ingest_mod, "published_watermark", lambda h: 7)  # the snapshot includes build 7
    assert ingest_mod.clear_pending(home) == 1
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT seq FROM raw.case_changes WHERE case_id = 'C-new'").fetchone()[0] == 8
    finally:
        con.close()


def test_the_daily_full_run_is_scheduled():
    from orchestration.definitions import DATA_TESTS_CRON, build_defs

    schedule = build_defs().resolve_schedule_def("registry_data_tests_schedule")
    assert schedule.job_name == "registry_data_tests" and schedule.cron_schedule == DATA_TESTS_CRON
    assert schedule.execution_timezone == "UTC"


def test_changes_not_yet_tested_are_kept_for_the_next_test_run(home, monkeypatch):
    """The warm builder tests when idle, after one or more builds: the changes after the last passing
    test run stay listed, though a snapshot includes them, so its next run tests just those cases; with
    no passing run on record every row is tested anyway, and the published changes go."""
    import orchestration.warehouse.ingest as ingest_mod

    def build(seq_published: int, case: str) -> None:
        _sql(home, f"INSERT INTO raw.pending_cases VALUES ('{case}')")
        monkeypatch.setattr(ingest_mod, "published_watermark", lambda h: seq_published)
        ingest_mod.clear_pending(home)

    build(0, "A")  # change 1
    assert tested.record(home, FP, 1, tested.WHOLE, passed=True) == 1
    build(1, "B")  # change 2, published; not tested
    build(2, "C")  # change 3: change 2 stays (not tested yet), change 1 goes (tested and published)
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT list(seq ORDER BY seq) FROM raw.case_changes").fetchone()[0] == [2, 3]
    finally:
        con.close()
    assert tested.changed_after(home, FP, published=3) == 1  # the cases of changes 2 and 3, not every row

    tested.record(home, FP, 3, "cases changed after build 1", passed=False)
    build(3, "D")  # after a failing run every row is tested: the published changes go
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT list(seq ORDER BY seq) FROM raw.case_changes").fetchone()[0] == [4]
    finally:
        con.close()
