"""The build use case: the pipeline run through Dagster, on the Dagster instance of the registry home.

``registry build`` and the sensor-triggered runs go through the same job (``registry_build``), so
every build is visible in the Dagster UI. A pipeline lock serialises builds: there is one writer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, JobDefinition

from orchestration.config import Home
from orchestration.definitions import build_defs
from orchestration.defs.jobs import BUILD_JOB, DATA_TESTS_JOB, WATERMARK_TAG
from orchestration.defs.assets import run_pid_tags
from orchestration.defs.checks import DBT_DATA_TESTS
from orchestration.defs import dbt_inprocess
from orchestration.defs.sensors import fail_stale_runs
from orchestration.registry import audit
from orchestration.registry.landing import landing_watermark
from orchestration.services.dagster_home import prepare_dagster_home
from orchestration.warehouse.ingest import BackgroundIngest
from orchestration.warehouse.locks import build_lock

@dataclass
class BuildSummary:
    success: bool
    run_id: str
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    ingested_records: int = 0
    cases: int = 0
    version: str | None = None
    submissions: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    watermark: str | None = None  # the newest landed batch this build covers

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


_TOTALS = ("submitted", "accepted", "duplicate", "quarantined")


def submission_totals(home: Home, events=()) -> dict[str, int]:
    """The submissions so far, by status: as the run's check ``nothing_submitted_is_lost`` counted
    them (reading the audit log of a million-case registry costs ~0.25 s), else counted here."""
    for ev in events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION" and ev.event_specific_data.check_name == "nothing_submitted_is_lost":
            md = {k: getattr(v, "value", v) for k, v in (ev.event_specific_data.metadata or {}).items()}
            if all(isinstance(md.get(k), int) for k in _TOTALS):
                return {k: md[k] for k in _TOTALS}
    c = audit.submission_counts(home)
    return {k: c[k] for k in _TOTALS}


@contextlib.contextmanager
def _run_session(home: Home, log_path, instance: DagsterInstance | None):
    """Around one Dagster run of this process: the home's Dagster instance (a long-lived caller, the
    warm builder, passes its open one: opening one costs ~1 s), under the build lock (runs are
    serialised; each step also takes the warehouse lock itself), with standard output in
    ``log_path`` (dagster-dbt echoes dbt's log there; it is also in the Dagster UI)."""
    prepare_dagster_home(home)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(home), open(log_path, "w") as log, contextlib.redirect_stdout(log):
        with (contextlib.nullcontext(instance) if instance is not None else DagsterInstance.from_config(str(home.dagster_home))) as inst:
            yield inst


@contextlib.contextmanager
def _waited_for(early: BackgroundIngest | None):
    """Around a block: at its end, however it ends, the early ingest has ended too."""
    try:
        yield
    finally:
        if early is not None:
            early.result()


def _run_config(home: Home) -> dict[str, Any]:
    return {
        "resources": {"registry": {"config": {"root": str(home.root)}}},
        "loggers": {"console": {"config": {"log_level": os.environ.get("REGISTRY_LOG_LEVEL", "CRITICAL")}}},
    }


@functools.cache
def build_job(*, data_tests: bool = True) -> JobDefinition:
    """The ``registry_build`` job; without ``data_tests``, its subset without the check
    ``dbt_data_tests`` (the warm builder's builds). Made once per process (``watch.prime`` warms it)."""
    job = build_defs().resolve_job_def(BUILD_JOB)
    if data_tests:
        return job
    graph = job.asset_layer.asset_graph
    return job.get_subset(asset_selection=set(graph.get_all_asset_keys()),
                          asset_check_selection={c for c in graph.asset_check_keys if c.name != DBT_DATA_TESTS})


def run_build(home: Home, *, asset_selection: list | None = None, full_refresh: bool = False,
              trigger: str = "cli", instance: DagsterInstance | None = None, early: BackgroundIngest | None = None,
              data_tests: bool = True, leave_parquet: bool = False) -> BuildSummary:
    """Ingest, ``dbt build`` and publish once, in this process, recorded on the home's Dagster instance.

    The warm builder passes ``data_tests=False`` (the run leaves out the check ``dbt_data_tests``: it
    runs the tests of the changed cases itself when idle, :func:`run_data_tests`) and ``leave_parquet``
    (the publish leaves the version's Parquet set to ``publish.complete_parquet``, run when idle).

    ``early`` is the ingest ``registry build`` started before its imports: the run waits for it only
    after its own preparations (the Dagster instance, the job, dbt's fixed costs: ~1.2 s of Python
    that the ingest's DuckDB work, on both cores, leaves room for; measured at 100k, interleaved:
    build 10.0-10.2 -> 9.5-9.8 s; at a million cases no gain). Whatever happens, the ingest is waited
    for before this returns or raises: it must never be left writing the warehouse."""
    t0 = time.perf_counter()
    log_path = home.dbt_dir / "logs" / "last_build.log"
    with _waited_for(early), _run_session(home, log_path, instance) as instance:
        # a build killed before this one left its run STARTED: mark it failed
        fail_stale_runs(instance)
        job = build_job(data_tests=data_tests)
        early_result = None
        if early is not None:
            with contextlib.suppress(Exception):  # only saves time: dbt reports any real problem itself
                dbt_inprocess.warm_up(home, more=early.running)
            early_result = early.result()
        # a manual build covers everything landed so far: tag it so the sensor does not redo it
        watermark = landing_watermark(home)
        tags = {"registry/trigger": trigger, **run_pid_tags(), **({WATERMARK_TAG: watermark} if watermark else {})}
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=asset_selection,
            tags=tags,
            run_config={
                **_run_config(home),
                "ops": {
                    "registry_dbt_models": {"config": {"full_refresh": full_refresh}},
                    **({"published_snapshot": {"config": {"leave_parquet": True}}} if leave_parquet else {}),
                    # what the caller ingested before the run (see orchestration/cli/main.py cmd_build)
                    **({"raw_tables": {"config": {
                        "early_batches": early_result.batches, "early_records": early_result.records,
                        "early_quarantined": early_result.quarantined, "early_seconds": round(early_result.seconds, 3),
                    }}} if early_result is not None and asset_selection is None else {}),
                },
            },
        )
        steps: dict[str, float] = {}
        ingested = cases = 0
        version = None
        for ev in result.all_events:
            if ev.event_type_value == "ASSET_MATERIALIZATION":
                mat = ev.event_specific_data.materialization
                key = mat.asset_key.to_user_string()
                md = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
                if key == "raw/case_records":
                    steps["ingest"] = float(md.get("seconds", 0.0))
                    ingested = int(md.get("new_record_versions", 0))
                elif key == "published_snapshot":
                    steps["publish"] = float(md.get("seconds", 0.0))
                    cases = int(md.get("cases", 0))
                    version = md.get("version")
        durations = _step_durations(instance, result.run_id)
        if "registry_dbt_models" in durations:
            steps["dbt"] = durations["registry_dbt_models"]
        success = result.success
        error = _first_failure(result.all_events, with_step=True) if not result.success else None
        failed_checks = _failed_checks(result.all_events)
        if failed_checks:  # a broken promise (e.g. nothing_submitted_is_lost) fails the build
            success = False
            error = (error + "; " if error else "") + "; ".join(failed_checks)
    if error:
        error += f"\n  (full log: {log_path})"
    summary = BuildSummary(
        success=success,
        run_id=result.run_id,
        seconds=time.perf_counter() - t0,
        steps=steps,
        ingested_records=ingested,
        cases=cases,
        version=version,
        submissions=submission_totals(home, result.all_events),
        error=error,
        watermark=watermark,
    )
    audit.event(home, "build", run_id=result.run_id, success=success, seconds=round(summary.seconds, 3), error=error,
                **({"trigger": trigger} if trigger != "cli" else {}))
    return summary


def _first_failure(events, *, with_step: bool = False) -> str | None:
    """What the run's first failed step says (named, ``with_step``), or None."""
    for ev in events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            text = _failure_summary(err.message if err else "failed")
            return f"{ev.step_key}: {text}" if with_step else text
    return None


def _failed_checks(events) -> list[str]:
    """One line per asset check of ERROR severity that did not pass, with its metadata."""
    out = []
    for ev in events:
        if ev.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        data = ev.event_specific_data
        if data.passed or getattr(data.severity, "value", str(data.severity)) != "ERROR":
            continue
        md = ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in (data.metadata or {}).items())
        out.append(f"asset check {data.check_name} failed" + (f" ({md})" if md else "") + "; run `registry verify`")
    return out


def _step_durations(instance, run_id: str) -> dict[str, float]:
    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None:
            continue
        if ev.event_type_value == "STEP_START":
            starts[ev.step_key] = entry.timestamp
        elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key in starts:
            out[ev.step_key] = entry.timestamp - starts[ev.step_key]
    return out


def _failure_summary(message: str) -> str:
    """The useful part of a step failure: dbt's own error lines when there are any, else the first line."""
    text = message.strip()
    lines = text.splitlines()
    if lines and lines[0].endswith("dbt build failed:"):  # the in-process dbt step's Failure: its lines follow
        return "dbt build failed:\n" + "\n".join(ln.rstrip() for ln in lines[1:13])
    return lines[0] if text else "failed"


@dataclass
class DataTestsSummary:
    success: bool
    run_id: str
    seconds: float
    tests: int = 0
    scope: str = ""
    error: str | None = None
    stopped: bool = False  # gave way to a newer submission before the end (nothing recorded)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def run_data_tests(home: Home, *, instance: DagsterInstance | None = None, changed_only: bool = False,
                   trigger: str = "cli", give_way_after: str | None = None) -> DataTestsSummary:
    """Every dbt data test over every row of the warehouse, as the daily ``registry_data_tests``
    schedule runs them (builds test only the cases they changed): one Dagster run, in this process.
    ``changed_only`` (the warm builder, after its builds): the rows of the cases changed since the last
    passing run, when that is safe, as a build's own check does; ``give_way_after`` (a landing
    watermark): no further test starts once a newer submission lands (``stopped``; nothing recorded).
    The run itself writes the audit line and records the run in the warehouse
    (``orchestration/defs/checks.py``)."""
    t0 = time.perf_counter()
    with _run_session(home, home.dbt_dir / "logs" / "last_data_tests.log", instance) as instance:
        fail_stale_runs(instance)  # a run killed before this one would stay STARTED and block the daemon's queue
        result = build_defs().resolve_job_def(DATA_TESTS_JOB).execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"registry/trigger": trigger, **run_pid_tags()},
            run_config={**_run_config(home), "ops": {"full_data_tests": {"config": {
                "changed_only": changed_only, "give_way_after": give_way_after or ""}}}},
        )
    summary = DataTestsSummary(success=result.success, run_id=result.run_id, seconds=time.perf_counter() - t0)
    if result.success:
        outcome = result.output_for_node("full_data_tests")
        summary.tests, summary.scope, summary.stopped = outcome["tests"], outcome["scope"], bool(outcome.get("stopped"))
    else:
        summary.error = _first_failure(result.all_events)
    return summary
