"""The Dagster code location of the registry (``dagster dev -m orchestration.definitions``): the
entry point only. The definitions are built when the code location loads (:func:`build_defs`,
cached), so importing this module does no work."""

from __future__ import annotations

import functools

from dagster import AssetSelection, Definitions, define_asset_job, definitions, in_process_executor

from orchestration.defs.assets import build_assets
from orchestration.defs.checks import dbt_data_tests, nothing_submitted_is_lost, snapshot_matches_warehouse
from orchestration.defs.resources import RegistryHome
from orchestration.defs.sensors import audit_failed_builds, audit_successful_builds, landing_zone_sensor

JOB = "registry_build"


@functools.cache
def build_defs() -> Definitions:
    registry_build = define_asset_job(
        JOB,
        selection=AssetSelection.all(),
        description="Ingest the landing zone, dbt build (with tests), publish a snapshot.",
        # one process for the whole run: steps are sequential anyway (one writer), and a subprocess per
        # step cost ~5 s each in start-up and code loading
        executor_def=in_process_executor,
    )
    return Definitions(
        assets=list(build_assets()),
        asset_checks=[nothing_submitted_is_lost, snapshot_matches_warehouse, dbt_data_tests],
        jobs=[registry_build],
        sensors=[landing_zone_sensor, audit_successful_builds, audit_failed_builds],
        # no dbt resource: the dbt step runs dbt in its own process (orchestration/defs/dbt_inprocess.py)
        resources={"registry": RegistryHome()},
    )


@definitions
def defs() -> Definitions:
    return build_defs()
