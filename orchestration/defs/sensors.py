"""Automatic refresh: while `registry serve` runs the Dagster daemon, this sensor watches the landing
zone and starts ``registry_build`` (ingest, dbt, publish) for new submissions. Nobody runs
``registry build`` by hand.

* Batch names are ``<UTC time>-<pid>-<random>`` and are created under the landing lock, so they
  sort in submission order; the newest name is the sensor's watermark.
* ``run_key`` = watermark + attempt: each new state of the landing zone is processed once, and a
  run that failed is retried on a later tick (at most every ``RETRY_AFTER_S``) without losing
  anything: the files stay in the landing zone and ingestion is idempotent.
* One run at a time (dagster.yaml sets ``max_concurrent_runs: 1``); submissions that arrive during
  a run are picked up by the next one, which ingests only the new batches.
"""

import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from orchestration.config import Home
from orchestration.defs.assets import PID_START_TAG, PID_TAG
from orchestration.defs.jobs import BUILD_JOB, DATA_TESTS_JOB, WATERMARK_TAG
from orchestration.defs.resources import RegistryHome
from orchestration.registry import audit, uploads
from orchestration.registry.fsutil import pid_alive
from orchestration.registry.landing import landing_watermark
from orchestration.warehouse.holders import watcher_active

RETRY_AFTER_S = 20
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def fail_stale_runs(instance) -> list[str]:
    """Mark failed every in-flight run of the registry's jobs (``registry_build``, the daily
    ``registry_data_tests``) whose process is gone (killed, crashed, the machine restarted):
    otherwise it stays STARTED forever, and since the daemon runs one run at a time, "another build
    is running" stops automatic refresh for good. A run's process is named by its ``registry/pid`` tags."""
    out = []
    records = [
        r for job in (BUILD_JOB, DATA_TESTS_JOB)
        for r in instance.get_run_records(
            filters=RunsFilter(job_name=job, statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]), limit=50)
    ]
    for r in records:
        run = r.dagster_run
        pid = run.tags.get(PID_TAG)
        if not pid or not pid.isdigit():
            continue  # not started by the registry's code yet: Dagster's run monitoring watches those
        if pid_alive(int(pid), run.tags.get(PID_START_TAG) or None):
            continue
        instance.report_run_failed(run, f"the process running this build ({pid}) is gone: it was killed or crashed")
        out.append(run.run_id)
    return out


def evaluate(context: SensorEvaluationContext, home: Home):
    fail_stale_runs(context.instance)
    if watcher_active(home):
        return SkipReason("the warm builder of `registry serve` (registry watch) is building this home")
    watermark = landing_watermark(home)
    if watermark is None:
        return SkipReason("the landing zone is empty")
    if context.cursor and context.cursor >= watermark:
        return SkipReason(f"up to date with {watermark}")
    if uploads.in_progress(home):
        return SkipReason("a file of several chunks is still landing; it is built once it has landed whole")
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=BUILD_JOB, tags={WATERMARK_TAG: watermark}), limit=20
    )
    if any(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in records):
        context.update_cursor(watermark)
        return SkipReason(f"built up to {watermark}")
    if any(r.dagster_run.status in IN_FLIGHT for r in records):
        return SkipReason(f"a run for {watermark} is in progress")
    # Do not start a second build while any other registry_build is still running.
    busy = context.instance.get_run_records(filters=RunsFilter(job_name=BUILD_JOB, statuses=IN_FLIGHT), limit=1)
    if busy:
        return SkipReason("another build is running; new submissions will be picked up next")
    failed = [r for r in records if r.dagster_run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)]
    if failed:
        last = max((r.end_time or r.start_time or r.create_timestamp.timestamp()) for r in failed)
        if time.time() - last < RETRY_AFTER_S:
            return SkipReason(f"the last build for {watermark} failed; retrying in {RETRY_AFTER_S}s")
    return RunRequest(
        run_key=f"{watermark}#attempt{len(failed) + 1}",
        tags={WATERMARK_TAG: watermark, "registry/trigger": "sensor"},
    )


@sensor(
    job_name=BUILD_JOB,
    minimum_interval_seconds=1,
    default_status=DefaultSensorStatus.RUNNING,
    description="Builds and publishes when new submissions land (retries a failed build on a later tick).",
)
def landing_zone_sensor(context: SensorEvaluationContext, registry: RegistryHome):
    return evaluate(context, registry.home())


def _audit_run(context: RunStatusSensorContext, home: Home, success: bool) -> None:
    run = context.dagster_run
    if run.tags.get("registry/trigger") != "sensor":
        return  # `registry build` writes its own audit event
    error = None
    if not success and context.failure_event is not None and context.failure_event.event_specific_data is not None:
        err = getattr(context.failure_event.event_specific_data, "error", None)
        error = err.message.strip().splitlines()[0] if err else "failed"
    audit.event(home, "build", run_id=run.run_id, success=success, trigger="sensor", error=error)


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[],
    default_status=DefaultSensorStatus.RUNNING,
    description="Records each automatic build in the audit log.",
    minimum_interval_seconds=2,
    monitor_all_code_locations=False,
)
def audit_successful_builds(context: RunStatusSensorContext, registry: RegistryHome):
    if context.dagster_run.job_name == BUILD_JOB:
        _audit_run(context, registry.home(), True)


@run_failure_sensor(
    default_status=DefaultSensorStatus.RUNNING,
    description="Records each failed automatic build in the audit log (it is retried by the landing sensor).",
    minimum_interval_seconds=2,
)
def audit_failed_builds(context: RunFailureSensorContext, registry: RegistryHome):
    if context.dagster_run.job_name == BUILD_JOB:
        _audit_run(context, registry.home(), False)
