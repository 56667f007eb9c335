"""Automatic refresh (the landing-zone sensor), concurrent submissions, consent withdrawal and the
audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context

from orchestration.config import Home
from orchestration.defs import sensors
from orchestration.registry.landing import landing_watermark, submit
from orchestration.synthetic.generate import generate_records
from tests.support import record, run_cli, seed_case, write_jsonl


def evaluate(home: Home, instance, cursor=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor)
    return sensors.evaluate(ctx, home), ctx


def test_sensor_requests_one_run_per_new_landing_state(home):
    with DagsterInstance.ephemeral() as instance:
        result, _ = evaluate(home, instance)
        assert isinstance(result, SkipReason) and "empty" in result.skip_message
        submit(home, [("a.json", json.dumps(record(case_id="S-1")).encode())])
        result, _ = evaluate(home, instance)
        assert isinstance(result, RunRequest)
        watermark = landing_watermark(home)
        assert result.run_key == f"{watermark}#attempt1"
        assert result.tags[sensors.WATERMARK_TAG] == watermark

        # a run for this watermark is in flight: no second request
        instance.add_run(DagsterRun(job_name="registry_build", run_id=str(uuid.uuid4()), tags=result.tags, status=DagsterRunStatus.STARTED))
        result, _ = evaluate(home, instance)
        assert isinstance(result, SkipReason) and "in progress" in result.skip_message


def test_sensor_retries_a_failed_build_without_losing_the_file(home, monkeypatch):
    submit(home, [("a.json", json.dumps(record(case_id="S-2")).encode())])
    watermark = landing_watermark(home)
    with DagsterInstance.ephemeral() as instance:
        instance.add_run(
            DagsterRun(job_name="registry_build", run_id=str(uuid.uuid4()), tags={sensors.WATERMARK_TAG: watermark}, status=DagsterRunStatus.FAILURE)
        )
        result, _ = evaluate(home, instance)
        assert isinstance(result, SkipReason) and "retrying" in result.skip_message
        monkeypatch.setattr(sensors, "RETRY_AFTER_S", 0)
        result, _ = evaluate(home, instance)
        assert isinstance(result, RunRequest) and result.run_key == f"{watermark}#attempt2"
    assert len(list(home.landing_batches.glob("*.jsonl"))) == 1  # still there


def test_sensor_is_quiet_once_the_watermark_is_built(home):
    submit(home, [("a.json", json.dumps(record(case_id="S-3")).encode())])
    watermark = landing_watermark(home)
    with DagsterInstance.ephemeral() as instance:
        instance.add_run(
            DagsterRun(job_name="registry_build", run_id=str(uuid.uuid4()), tags={sensors.WATERMARK_TAG: watermark}, status=DagsterRunStatus.SUCCESS)
        )
        result, ctx = evaluate(home, instance)
        assert isinstance(result, SkipReason) and ctx.cursor == watermark
        result, _ = evaluate(home, instance, cursor=watermark)
        assert isinstance(result, SkipReason) and "up to date" in result.skip_message
        # a new submission moves the watermark: a new run is requested
        submit(home, [("b.json", json.dumps(record(case_id="S-4")).encode())])
        result, _ = evaluate(home, instance, cursor=watermark)
        assert isinstance(result, RunRequest)


def test_two_concurrent_submitters_land_every_record(home, tmp_path):
    records = list(generate_records(1000, seed=3))
    a = write_jsonl(tmp_path / "a.jsonl", records[:500])
    b = write_jsonl(tmp_path / "b.jsonl", records[500:])
    exe = str(__import__("pathlib").Path(sys.executable).with_name("registry"))
    env = {**__import__("os").environ, "REGISTRY_HOME": str(home.root)}
    procs = [subprocess.Popen([exe, "submit", "--format", "json", str(f)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in (a, b)]
    # read one process's output to the end before the other's: a submitter that held the landing
    # lock while writing receipts would block here (that bug once deadlocked this test)
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    statuses = [r["status"] for out, _ in outs for r in json.loads(out)]
    assert statuses.count("accepted") == 1000
    landed = [json.loads(line)["case_id"] for f in home.landing_batches.glob("*.jsonl") for line in f.open()]
    assert len(landed) == len(set(landed)) == 1000
    events = [json.loads(line) for line in home.audit_log.open()]
    assert sum(1 for e in events if e["event"] == "submission") == 1000


@pytest.mark.slow
@pytest.mark.xdist_group("build")
def test_withdrawal_leaves_no_trace_analysts_can_read(home, tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(seed_case()))
    bad = record(case_id="LIT-AUTOPSY-002", revision=2, patient={"age_years": 400, "sex": "male"})
    write_jsonl(tmp_path / "bad.jsonl", [bad])
    write_jsonl(tmp_path / "other.jsonl", list(generate_records(20, seed=5)))
    run_cli("submit", str(seed), str(tmp_path / "bad.jsonl"), str(tmp_path / "other.jsonl"), home=home)
    assert run_cli("build", home=home).returncode == 0
    first_version = home.published_current.resolve()

    p = run_cli("withdraw", "LIT-AUTOPSY-002", "--reason", "consent withdrawn by the patient", home=home)
    assert p.returncode == 0, p.stdout + p.stderr

    for table in ("dim_cases", "fct_lab_results", "fct_organ_involvement", "fct_treatments", "fct_lesions", "dim_case_revisions", "quality_quarantine"):
        out = run_cli("sql", "--format", "json", f"SELECT count(*) AS n FROM {table} WHERE case_id = 'LIT-AUTOPSY-002'", home=home)
        assert json.loads(out.stdout) == [{"n": 0}], table
    assert json.loads(run_cli("sql", "--format", "json", "SELECT count(*) AS n FROM dim_cases", home=home).stdout) == [{"n": 20}]
    # no older snapshot still holding the case, and no payload anywhere in the landing zone, quarantine or raw tables
    assert not first_version.exists()
    assert [v.name for v in home.published_versions.iterdir()] == [home.published_current.resolve().name]
    for folder in (home.landing, home.quarantine):
        for f in folder.rglob("*.jsonl"):
            assert "LIT-AUTOPSY-002" not in f.read_text(), f
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    for t in ("case_records", "labs", "organs", "lesions", "treatments", "quarantine"):
        assert con.execute(f"SELECT count(*) FROM raw.{t} WHERE case_id = 'LIT-AUTOPSY-002'").fetchone()[0] == 0
    con.close()

    events = json.loads(run_cli("audit", "--format", "json", home=home).stdout)
    about = [e for e in events if e.get("case_id") == "LIT-AUTOPSY-002"]
    # the audit shows the submissions and the withdrawal; of the case it keeps only ids, outcome and time
    assert [e["event"] for e in about] == ["submission", "submission", "withdrawal"]
    assert {e["status"] for e in about[:2]} == {"accepted", "quarantined"}
    for e in about[:2]:
        assert set(e) == {"at", "event", "case_id", "revision", "status", "withdrawn"} and e["withdrawn"] is True
    assert set(about[2]) == {"at", "event", "case_id", "reason"}
    assert any(e["event"] == "submission" for e in events) and any(e["event"] == "build" for e in events)

    again = run_cli("submit", "--format", "json", str(seed), home=home)
    (r,) = json.loads(again.stdout)
    assert r["status"] == "quarantined" and r["errors"][0]["path"] == "case_id"
