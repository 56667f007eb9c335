"""The Dagster code location of the registry (``dagster dev -m orchestration.definitions``)."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from orchestration.defs.assets import published_snapshot, raw_tables, registry_dbt_models
from orchestration.defs.checks import nothing_submitted_is_lost, snapshot_matches_warehouse
from orchestration.defs.resources import RegistryHome, dbt_resource
from orchestration.defs.sensors import audit_failed_builds, audit_successful_builds, landing_zone_sensor

registry_build = define_asset_job(
    "registry_build",
    selection=AssetSelection.all(),
    description="Ingest the landing zone, dbt build (with tests), publish a snapshot.",
    # one process for the whole run: steps are sequential anyway (one writer), and a subprocess per
    # step cost ~5 s each in start-up and code loading
    executor_def=in_process_executor,
)

defs = Definitions(
    assets=[raw_tables, registry_dbt_models, published_snapshot],
    asset_checks=[nothing_submitted_is_lost, snapshot_matches_warehouse],
    jobs=[registry_build],
    sensors=[landing_zone_sensor, audit_successful_builds, audit_failed_builds],
    resources={"registry": RegistryHome(), "dbt": dbt_resource()},
)
