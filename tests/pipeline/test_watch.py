"""The warm builder (`registry watch`, started by `registry serve`): a submission is built and
published without anyone running `registry build`, the run is on the home's Dagster instance and in
the audit log, and the landing sensor stands aside only while a live watcher beats (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from dagster import DagsterInstance, RunsFilter, SkipReason, build_sensor_context

from orchestration.defs import sensors
from orchestration.registry import audit, uploads
from orchestration.registry.landing import submit
from orchestration.warehouse import snapshot
from orchestration.warehouse.holders import beat, heartbeat_file, watcher_active
from tests.pipeline.crashkit import env_for
from tests.support import record

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("watch")]


def _sensor_skip(home) -> str | None:
    with DagsterInstance.ephemeral() as instance:
        res = sensors.evaluate(build_sensor_context(instance=instance), home)
    return res.skip_message if isinstance(res, SkipReason) else None


def test_sensor_stands_aside_only_for_a_live_fresh_watcher(home):
    submit(home, [("a.json", json.dumps(record(case_id="W-0")).encode())])
    assert _sensor_skip(home) is None  # no watcher: the sensor asks for a run
    beat(home)  # this (live) process beats
    assert watcher_active(home)
    assert "warm builder" in _sensor_skip(home)
    hb = json.loads(heartbeat_file(home).read_text())
    heartbeat_file(home).write_text(json.dumps({**hb, "at": time.time() - 3600}))  # stuck for an hour
    assert not watcher_active(home)
    assert _sensor_skip(home) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    heartbeat_file(home).write_text(json.dumps({**hb, "pid": dead.pid, "pid_start": None, "building": True}))
    assert not watcher_active(home)  # a gone process never holds the sensor back
    heartbeat_file(home).write_text("{not json")
    assert not watcher_active(home)
    upload = uploads.Upload(home)  # a file of several chunks still landing (this live process)
    upload.begin()
    assert "still landing" in _sensor_skip(home)
    upload.end()
    assert _sensor_skip(home) is None


def _visible(home, case_id: str) -> bool:
    if not home.published_current.exists():
        return False
    con = snapshot.connect(home)
    try:
        return con.execute("SELECT count(*) FROM dim_cases WHERE case_id = ?", [case_id]).fetchone()[0] == 1
    finally:
        con.close()


def _building(home) -> bool:
    try:
        return bool(json.loads(heartbeat_file(home).read_text()).get("building"))
    except (OSError, ValueError):
        return True


def _watch_builds(home) -> list[dict]:
    return [e for e in audit.read(home) if e.get("event") == "build" and e.get("trigger") == "watch"]


def _wait_for_idle_tests(home, proc, deadline: float) -> None:
    """Until the data tests of the newest build have run (a run of registry_data_tests when the
    builder is idle: waited for to its end, a SIGTERM would interrupt it)."""
    while not [e for e in audit.read(home) if e.get("event") == "data_tests"
               and e.get("at", "") > _watch_builds(home)[-1]["at"]] or _building(home):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the data tests never ran"
        time.sleep(0.2)


def test_watcher_builds_what_lands_and_stops_on_sigterm(home):
    submit(home, [("first.json", json.dumps(record(case_id="W-1")).encode())])
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "watch"], env=env_for(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not _visible(home, "W-1"):  # what landed before it started
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "W-1 was never published"
            time.sleep(0.3)
        assert watcher_active(home)
        submit(home, [("second.json", json.dumps(record(case_id="W-2")).encode())])
        while not _visible(home, "W-2"):  # and what lands while it watches
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "W-2 was never published"
            time.sleep(0.2)
        while len(_watch_builds(home)) < 2:  # let that build end
            assert time.monotonic() < deadline, "the second build never ended"
            time.sleep(0.2)
        # once idle, the builder runs the data tests its builds left out: the cases they changed
        _wait_for_idle_tests(home, proc, deadline)
        # while a file of several chunks is still landing, nothing is built; once it has landed, it is
        upload = uploads.Upload(home)
        upload.begin()
        n_builds = len(_watch_builds(home))
        submit(home, [("third.json", json.dumps(record(case_id="W-3")).encode())])
        time.sleep(2)  # the builder looks every 50 ms
        assert not _visible(home, "W-3") and not _building(home) and len(_watch_builds(home)) == n_builds
        upload.end()
        while not _visible(home, "W-3"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "W-3 was never published"
            time.sleep(0.2)
        while len(_watch_builds(home)) < n_builds + 1:
            assert time.monotonic() < deadline, "the third build never ended"
            time.sleep(0.2)
        _wait_for_idle_tests(home, proc, deadline)
        # the first publish left its Parquet set with nothing to show meanwhile: written since, whole
        assert (home.published_current / "parquet" / "dim_cases.parquet").is_file()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert "nanobind" not in out  # no "nanobind: leaked ..." from DuckDB's bindings at exit (cli/main.py cmd_watch)
    assert "built and published" in out
    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        runs = instance.get_run_records(filters=RunsFilter(job_name="registry_build", tags={"registry/trigger": "watch"}))
    assert len(runs) >= 2 and all(r.dagster_run.status.value == "SUCCESS" for r in runs)
    builds = _watch_builds(home)
    assert len(builds) == len(runs) and all(e["success"] for e in builds)
    tests = [e for e in audit.read(home) if e.get("event") == "data_tests"]
    assert tests and all(e["success"] for e in tests)
    # the first test run on a warehouse reads every row; after a passing one, the changed cases
    assert tests[0]["scope"] == "all rows" and all(e["scope"].startswith("cases changed after build") for e in tests[1:])
    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        test_runs = instance.get_run_records(filters=RunsFilter(job_name="registry_data_tests", tags={"registry/trigger": "watch"}))
        build_checks = {e.check_name for r in runs for e in [
            ev.dagster_event.event_specific_data for ev in instance.all_logs(r.dagster_run.run_id)
            if ev.dagster_event is not None and ev.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]}
    assert test_runs and all(r.dagster_run.status.value == "SUCCESS" for r in test_runs), [(r.dagster_run.status, r.create_timestamp) for r in test_runs]
    assert "dbt_data_tests" not in build_checks  # left out of the warm builder's builds ...
    assert "nothing_submitted_is_lost" in build_checks  # ... unlike the promise checks


def test_finish_signal_lets_the_build_in_progress_end_well(home):
    """`registry serve` stops its warm builder with SIGUSR1 first: the build in progress is not
    interrupted (no failed build in the audit log for a harmless stop), then the watcher exits."""
    submit(home, [("first.json", json.dumps(record(case_id="F-1")).encode())])
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "watch"], env=env_for(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:  # wait until it is building
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the watcher never started building"
            try:
                if json.loads(heartbeat_file(home).read_text()).get("building"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGUSR1)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "build failed" not in out, out
    builds = _watch_builds(home)
    assert len(builds) == 1 and builds[0]["success"], builds
    assert _visible(home, "F-1")
