"""dbt's data tests of an ordinary build run after publishing (check ``dbt_data_tests``): a failing
test fails the build (exit 1, the check's verdict, the audit line) although the snapshot it read is
published (the tests follow publishing by design, so that a new case is visible within seconds), and
a repaired warehouse makes the next build succeed. The check also runs in a run without the dbt step.

Measured and not kept (issue 16, fifth session): running the tests in a thread beside publishing saved
~1.2 s of a 1M build but raised a one-case build's peak memory at 1M from 1.35 to 2.0 GB (the patch
and the tests at once) and delayed the snapshot's switch."""

from __future__ import annotations

import json

import duckdb
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from tests.support import run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("data_tests")]


def _build(home: Home) -> tuple[int, dict]:
    p = run_cli("build", "--format", "json", home=home)
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])


def _check_metadata(home: Home, run_id: str) -> dict:
    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        key = AssetCheckKey(AssetKey("published_snapshot"), "dbt_data_tests")
        for entry in instance.all_logs(run_id):
            ev = entry.dagster_event
            if ev is not None and ev.event_type_value == "ASSET_CHECK_EVALUATION":
                data = ev.event_specific_data
                if data.asset_check_key == key:
                    return {"passed": data.passed, **{k: getattr(v, "value", v) for k, v in data.metadata.items()}}
    raise AssertionError("no dbt_data_tests evaluation in the run")


def test_a_failing_data_test_fails_the_build_and_a_repaired_one_passes(tmp_path):
    home = Home(tmp_path / "home").ensure()
    cohort = write_jsonl(tmp_path / "cohort.jsonl", list(generate_records(25, seed=21)))
    assert run_cli("submit", str(cohort), home=home).returncode == 0
    rc, summary = _build(home)
    assert rc == 0 and summary["success"], summary
    ok = _check_metadata(home, summary["run_id"])
    assert ok["passed"] and ok["tests"] >= 20 and ok["failed"] == "none", ok

    # a second row for a case no build recomputes: dbt's unique test on dim_cases.case_id fails
    con = duckdb.connect(str(home.warehouse))
    try:
        case_id = con.execute("SELECT min(case_id) FROM main.dim_cases").fetchone()[0]
        con.execute("INSERT INTO main.dim_cases SELECT * FROM main.dim_cases WHERE case_id = ?", [case_id])
    finally:
        con.close()
    rc, summary = _build(home)
    assert rc == 1 and not summary["success"], summary
    assert "dbt_data_tests" in summary["error"] and "unique_dim_cases_case_id" in summary["error"], summary["error"]
    bad = _check_metadata(home, summary["run_id"])
    assert not bad["passed"] and "unique_dim_cases_case_id" in bad["failed"], bad
    # the snapshot was published before the tests' verdict (by design): it has what they read
    snap = duckdb.connect(str(home.published_current.resolve() / "registry.duckdb"), read_only=True)
    try:
        assert snap.execute("SELECT count(*) FROM dim_cases WHERE case_id = ?", [case_id]).fetchone()[0] == 2
    finally:
        snap.close()
    audit = [json.loads(line) for line in (home.audit_log).read_text().splitlines()]
    assert [a["success"] for a in audit if a["event"] == "build"][-2:] == [True, False]

    # repaired in the warehouse: the next build passes its tests again
    con = duckdb.connect(str(home.warehouse))
    try:
        con.execute("DELETE FROM main.dim_cases WHERE case_id = ?", [case_id])
        con.execute("INSERT OR IGNORE INTO raw.pending_cases VALUES (?)", [case_id])
    finally:
        con.close()
    rc, summary = _build(home)
    assert rc == 0 and summary["success"], summary
    assert _check_metadata(home, summary["run_id"])["passed"]

    # the publish step alone (no dbt step in the run): its check runs the tests all the same
    from orchestration.services.build import run_build

    alone = run_build(home, asset_selection=[AssetKey("published_snapshot")])
    assert alone.success, alone.error
    md = _check_metadata(home, alone.run_id)
    assert md["passed"] and md["tests"] == ok["tests"], md
