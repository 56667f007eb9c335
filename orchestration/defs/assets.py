"""The asset graph: landing zone -> raw tables -> dbt (staging, intermediate, marts) -> published snapshot.

The dbt assets need the dbt manifest, so the graph is built by :func:`build_assets` when the code
location loads (cached), never at import.
"""


import functools
import os
import time
from typing import Any, Mapping

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.defs.dbt_project import dbt_project, ensure_manifest, home_profiles_dir
from orchestration.defs.resources import RegistryHome
from orchestration.registry.fsutil import pid_start
from orchestration.warehouse.holders import clear_child, kill_stale_children, record_child
from orchestration.warehouse.ingest import clear_pending, ingest
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.publish import publish

PID_TAG = "registry/pid"
PID_START_TAG = "registry/pid_start"


def run_pid_tags() -> dict[str, str]:
    """Tags naming the process that executes a run: a run whose process is gone is not running."""
    pid = os.getpid()
    return {PID_TAG: str(pid), PID_START_TAG: pid_start(pid) or ""}


def _tag_run_with_pid(context: AssetExecutionContext) -> None:
    """Runs launched by the daemon get their process's tags here (`registry build` sets them itself)."""
    if context.run.tags.get(PID_TAG) != str(os.getpid()):
        context.instance.add_run_tags(context.run_id, run_pid_tags())


RAW_TABLES = (
    "case_records",
    "labs",
    "organs",
    "lesions",
    "treatments",
    "ingested_batches",
    "quarantine",
    "quarantine_resolutions",
)


@multi_asset(
    specs=[
        AssetSpec(
            AssetKey(["raw", t]),
            group_name="landing",
            description=f"raw.{t}: loaded set-based from the immutable landing zone",
            skippable=True,
        )
        for t in RAW_TABLES
    ],
    can_subset=False,
)
def raw_tables(context: AssetExecutionContext, registry: RegistryHome):
    """Ingest every landing and quarantine batch not yet in the warehouse (idempotent)."""
    home = registry.home()
    _tag_run_with_pid(context)
    with warehouse_lock(home):
        for line in kill_stale_children(home):  # a killed build's dbt still holding DuckDB's lock
            context.log.warning(line)
        res = ingest(home)
    context.log.info(
        f"ingested {res.records} record versions from {res.batches} landing batches and "
        f"{res.quarantined} quarantined records in {res.seconds:.2f}s"
    )
    for t in RAW_TABLES:
        yield MaterializeResult(
            asset_key=AssetKey(["raw", t]),
            metadata={
                "new_batches": res.batches,
                "new_record_versions": res.records,
                "new_quarantined": res.quarantined,
                "seconds": MetadataValue.float(round(res.seconds, 3)),
            },
        )


class RegistryDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "reference"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


class DbtBuildConfig(Config):
    full_refresh: bool = False  # rebuild every incremental model from scratch


@functools.cache
def build_assets() -> "tuple[AssetsDefinition, AssetsDefinition, AssetsDefinition]":
    """(raw tables, dbt models, published snapshot), the dbt part from the prepared manifest."""
    project = dbt_project()

    @dbt_assets(
        manifest=ensure_manifest(),
        project=project,
        dagster_dbt_translator=RegistryDbtTranslator(),
    )
    def registry_dbt_models(
        context: AssetExecutionContext, config: DbtBuildConfig, dbt: DbtCliResource, registry: RegistryHome
    ):
        """``dbt build``: seeds, models with enforced contracts and data tests. The per-case models are
        incremental: they recompute only the cases ingestion listed as pending. dbt's unit tests check
        the models' SQL against fixed fixtures, not the data, so their verdict changes only with the
        code: they run on ``--full-refresh`` (and so in the test suite), not on every build (13 of the
        129 nodes, about a fifth of dbt's node time at 100k cases)."""
        home = registry.home()
        args = [
            "build", "--profiles-dir", str(home_profiles_dir(home)),
            *(["--full-refresh"] if config.full_refresh else ["--exclude-resource-type", "unit_test"]),
        ]
        t0 = time.perf_counter()
        with warehouse_lock(home):
            for line in kill_stale_children(home):
                context.log.warning(line)
            invocation = dbt.cli(args, context=context, target_path=home.dbt_dir / "target")
            # recorded, so that the next build can stop it if this process dies and leaves it running
            record_child(home, invocation.process.pid)
            try:
                yield from invocation.stream()
            finally:
                clear_child(home)
            cleared = clear_pending(home)  # reached only when dbt build succeeded
        context.log.info(f"dbt build finished in {time.perf_counter() - t0:.2f}s ({cleared} pending cases)")

    @asset(
        key=AssetKey("published_snapshot"),
        deps=list(registry_dbt_models.keys),
        group_name="published",
        description=(
            "The consistent snapshot readers use: published/current -> versions/<id>/ with a DuckDB file, "
            "Parquet files and the data dictionary; switched atomically."
        ),
    )
    def published_snapshot(context: AssetExecutionContext, registry: RegistryHome) -> MaterializeResult:
        home = registry.home()
        with warehouse_lock(home):
            res = publish(home, manifest_path=home.dbt_dir / "target" / "manifest.json")
        context.log.info(f"published {res.version} in {res.seconds:.2f}s")
        return MaterializeResult(
            metadata={
                "version": res.version,
                "path": MetadataValue.path(str(res.path)),
                "seconds": MetadataValue.float(round(res.seconds, 3)),
                "cases": res.tables.get("dim_cases", 0),
                "tables": MetadataValue.json(res.tables),
            }
        )

    return raw_tables, registry_dbt_models, published_snapshot
