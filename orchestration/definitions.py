"""The Dagster code location of the registry (``dagster dev -m orchestration.definitions``): the
entry point only. The definitions are built when the code location loads (:func:`build_defs`,
cached), so importing this module does no work."""

from __future__ import annotations

import functools

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    JobDefinition,
    ScheduleDefinition,
    define_asset_job,
    definitions,
    in_process_executor,
    job,
)

from orchestration.defs.assets import build_assets
from orchestration.defs.checks import (
    dbt_data_tests,
    full_data_tests,
    nothing_submitted_is_lost,
    snapshot_matches_warehouse,
)
from orchestration.defs.jobs import BUILD_JOB, DATA_TESTS_JOB
from orchestration.defs.resources import RegistryHome
from orchestration.defs.sensors import audit_failed_builds, audit_successful_builds, landing_zone_sensor

#: when every data test runs over every row (the daemon of `registry serve`)
DATA_TESTS_CRON, DATA_TESTS_TIMEZONE = "30 3 * * *", "UTC"


def data_tests_job() -> JobDefinition:
    @job(name=DATA_TESTS_JOB, executor_def=in_process_executor,
         description="Every dbt data test over every row (a build tests only the cases it changed).")
    def registry_data_tests():
        full_data_tests()

    return registry_data_tests


@functools.cache
def build_defs() -> Definitions:
    registry_build = define_asset_job(
        BUILD_JOB,
        selection=AssetSelection.all(),
        description="Ingest the landing zone, dbt build (with tests), publish a snapshot.",
        # one process for the whole run: steps are sequential anyway (one writer), and a subprocess per
        # step cost ~5 s each in start-up and code loading
        executor_def=in_process_executor,
    )
    full_tests = data_tests_job()
    return Definitions(
        assets=list(build_assets()),
        asset_checks=[nothing_submitted_is_lost, snapshot_matches_warehouse, dbt_data_tests],
        jobs=[registry_build, full_tests],
        schedules=[ScheduleDefinition(job=full_tests, cron_schedule=DATA_TESTS_CRON, execution_timezone=DATA_TESTS_TIMEZONE,
                                      default_status=DefaultScheduleStatus.RUNNING)],
        sensors=[landing_zone_sensor, audit_successful_builds, audit_failed_builds],
        # no dbt resource: the dbt step runs dbt in its own process (orchestration/defs/dbt_inprocess.py)
        resources={"registry": RegistryHome()},
    )


@definitions
def defs() -> Definitions:
    return build_defs()
