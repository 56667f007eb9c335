"""A build whose process is gone is not "running" (issue 15): the landing sensor would otherwise
answer "another build is running" for good after one crash. And a submission that has not
committed is not a watermark."""

from __future__ import annotations

import subprocess
import sys
import uuid

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from orchestration.config import Home
from orchestration.defs.assets import PID_START_TAG, PID_TAG, run_pid_tags
from orchestration.defs.sensors import fail_stale_runs, landing_watermark
from orchestration.registry import journal


def _run(instance, tags, job="registry_build"):
    run = DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    return run.run_id


def test_runs_of_dead_processes_are_marked_failed_live_ones_kept():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with DagsterInstance.ephemeral() as instance:
        gone = _run(instance, {PID_TAG: str(dead.pid), PID_START_TAG: ""})
        live = _run(instance, run_pid_tags())
        untagged = _run(instance, {})
        assert fail_stale_runs(instance) == [gone]
        assert instance.get_run_by_id(gone).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(untagged).status == DagsterRunStatus.STARTED


def test_a_killed_run_of_the_daily_data_tests_is_marked_failed_too():
    """The daemon runs one run at a time: a killed data-tests run left STARTED would hold back
    every build the landing sensor asks for."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with DagsterInstance.ephemeral() as instance:
        gone = _run(instance, {PID_TAG: str(dead.pid), PID_START_TAG: ""}, job="registry_data_tests")
        other = _run(instance, {PID_TAG: str(dead.pid), PID_START_TAG: ""}, job="someone_elses_job")
        assert fail_stale_runs(instance) == [gone]
        assert instance.get_run_by_id(gone).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(other).status == DagsterRunStatus.STARTED


def test_a_reused_pid_is_not_the_same_process():
    with DagsterInstance.ephemeral() as instance:
        me = run_pid_tags()
        old = _run(instance, {PID_TAG: me[PID_TAG], PID_START_TAG: str(int(me[PID_START_TAG]) - 1)})
        assert fail_stale_runs(instance) == [old]


def test_an_uncommitted_batch_is_not_the_watermark(tmp_path):
    home = Home(tmp_path / "home").ensure()
    (home.landing_batches / "20260101T000000000000Z-1-aaaa.jsonl").write_text("")
    (home.landing_batches / "20260102T000000000000Z-1-bbbb.jsonl").write_text("")
    journal.journal_dir(home).mkdir(parents=True, exist_ok=True)
    (journal.journal_dir(home) / "20260102T000000000000Z-1-bbbb.json").write_text("{}")
    assert landing_watermark(home) == "20260101T000000000000Z-1-aaaa"
