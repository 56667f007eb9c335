"""The asset graph: landing zone -> raw tables -> dbt (staging, intermediate, marts) -> published snapshot.

The dbt assets need the dbt manifest, so the graph is built by :func:`build_assets` when the code
location loads (cached), never at import.
"""


import functools
import graphlib
import os
import queue
import threading
import time
from typing import Any, Mapping

import duckdb

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from orchestration.defs.dbt_inprocess import current as dbt_current
from orchestration.defs.dbt_inprocess import forget as dbt_forget
from orchestration.defs.dbt_inprocess import invoke as dbt_invoke
from orchestration.defs.dbt_inprocess import manifest as dbt_manifest
from orchestration.defs.dbt_inprocess import mark_loaded as dbt_mark_loaded
from orchestration.defs.dbt_inprocess import node_kind, tests_fingerprint
from orchestration.defs.dbt_project import dbt_project, ensure_manifest
from orchestration.defs.resources import RegistryHome
from orchestration.registry.fsutil import crash_point, pid_start
from orchestration.warehouse import tested
from orchestration.warehouse.holders import kill_stale_children
from orchestration.warehouse.ingest import MEMORY_LIMIT, clear_pending, ingest
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.publish import publish, published_watermark

PID_TAG = "registry/pid"
PID_START_TAG = "registry/pid_start"


def run_pid_tags() -> dict[str, str]:
    """Tags naming the process that executes a run: a run whose process is gone is not running."""
    pid = os.getpid()
    return {PID_TAG: str(pid), PID_START_TAG: pid_start(pid) or ""}


def tag_run_with_pid(context: AssetExecutionContext | OpExecutionContext) -> None:
    """Runs launched by the daemon get their process's tags here (`registry build` sets them itself)."""
    if context.run.tags.get(PID_TAG) != str(os.getpid()):
        context.instance.add_run_tags(context.run_id, run_pid_tags())


class IngestConfig(Config):
    """What `registry build` ingested itself just before this run, while Dagster was still loading."""

    early_batches: int = 0
    early_records: int = 0
    early_quarantined: int = 0
    early_seconds: float = 0.0


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
def raw_tables(context: AssetExecutionContext, config: IngestConfig, registry: RegistryHome):
    """Ingest every landing and quarantine batch not yet in the warehouse (idempotent)."""
    home = registry.home()
    tag_run_with_pid(context)
    with warehouse_lock(home):
        for line in kill_stale_children(home):  # a killed build's dbt still holding DuckDB's lock
            context.log.warning(line)
        res = ingest(home)
    # `registry build` may have ingested already, while Dagster was loading (warehouse/ingest.py
    # ingest_in_background): count it here
    batches, records, quarantined = res.batches + config.early_batches, res.records + config.early_records, res.quarantined + config.early_quarantined
    seconds = res.seconds + config.early_seconds
    context.log.info(
        f"ingested {records} record versions from {batches} landing batches and "
        f"{quarantined} quarantined records in {seconds:.2f}s"
        + (f" ({config.early_records} of them while the build started)" if config.early_records else "")
    )
    for t in RAW_TABLES:
        yield MaterializeResult(
            asset_key=AssetKey(["raw", t]),
            metadata={
                "new_batches": batches,
                "new_record_versions": records,
                "new_quarantined": quarantined,
                "seconds": MetadataValue.float(round(seconds, 3)),
                "ingested_before_the_run": config.early_records,
            },
        )


class RegistryDbtTranslator(DagsterDbtTranslator):
    """Asset groups by folder. dbt's data tests are not separate Dagster asset checks: they run in
    dbt, and their verdict is the ``dbt_data_tests`` check of the published snapshot (or, on
    ``--full-refresh``, part of the dbt step itself)."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=False))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "reference"
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


class DbtBuildConfig(Config):
    full_refresh: bool = False  # rebuild every incremental model from scratch


class PublishConfig(Config):
    # the warm builder: the version's Parquet set, due after the switch, is left to an idle moment
    # (publish.complete_parquet, which stops when a new case lands), so that the next case never waits for it
    leave_parquet: bool = False


def _dbt_crash_hook(event) -> None:
    """A crash point in the middle of dbt (after its first model), for the crash tests."""
    if getattr(getattr(event, "info", None), "name", "") == "NodeFinished":
        crash_point("dbt.after_first_node")


def dbt_build_args(home, full_refresh: bool, man) -> tuple[list[str], list[str], set[str]]:
    """The ``dbt build`` of one run, what it redoes that builds usually skip ("seeds", "views"), and
    the names of the nodes it leaves as they are.

    * ``--full-refresh``: everything, with dbt's unit tests (they check the models' SQL on fixed
      fixtures, so their verdict changes only with the code) and data tests, which then block publishing.
    * otherwise the models only: never the unit tests, the data tests after publishing
      (``dbt_data_tests``), the seeds only when the reference CSVs changed and the views only when a
      dbt file changed (or the warehouse lacks them: ``orchestration/defs/dbt_inprocess.py``)."""
    if full_refresh:
        return ["build", "--full-refresh"], ["seeds", "views"], set()
    seeds = [n.name for n in man.nodes.values() if node_kind(n) == "seed"]
    views = [n.name for n in man.nodes.values() if node_kind(n) == "model" and n.config.materialized == "view"]
    have = _warehouse_relations(home)
    redo = [kind for kind, names in (("seeds", seeds), ("views", views))
            if not dbt_current(home, kind, set(names) <= have)]
    args = ["build", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "test"]
    skipped: set[str] = set()
    if "seeds" not in redo:
        args += ["--exclude-resource-type", "seed"]
        skipped.update(seeds)
    if "views" not in redo:
        args += ["--exclude", "config.materialized:view"]
        skipped.update(views)
    return args, redo, skipped


class DbtCancelled(Exception):
    """Raised in dbt's thread, at a node's start, once the build has been interrupted."""


class _DbtStream:
    """``dbt build`` in a thread of this process, and the models it has finished so far."""

    def __init__(self, home, args: list[str], *, skipped: set[str]):
        self.skipped = skipped
        self.finished: dict[str, dict[str, Any]] = {}  # name -> {"status", "seconds"}
        self.recorded: set[AssetKey] = set()
        self._events: queue.Queue = queue.Queue()
        self._outcome: Any = None
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(home, args), name="registry-dbt", daemon=True)
        self._thread.start()

    def _on_event(self, event) -> None:
        _dbt_crash_hook(event)
        name = getattr(getattr(event, "info", None), "name", "")
        if name == "NodeFinished":
            data = event.data
            self._events.put((data.node_info.node_name, str(data.run_result.status), float(data.run_result.execution_time or 0.0)))
        elif name == "NodeCompiling" and self._cancelled.is_set():
            # raised inside dbt's per-node error handling: this node fails, what depends on it is
            # skipped, and dbt returns once the nodes already running have finished
            raise DbtCancelled("the build was interrupted")

    def cancel(self) -> None:
        """Stop dbt soon: no further node starts (those running finish); then wait for it."""
        self._cancelled.set()
        self._thread.join()

    def _run(self, home, args: list[str]) -> None:
        try:
            self._outcome = dbt_invoke(home, args, on_event=self._on_event)
        except BaseException as exc:  # noqa: BLE001 - handed to the step's thread
            self._error = exc
        finally:
            self._events.put(None)

    def events(self):
        """(name, status, seconds) of each node dbt finishes, until dbt returns."""
        while True:
            item = self._events.get()
            if item is None:
                return
            yield item

    def outcome(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome

    def _result(self, key: AssetKey) -> MaterializeResult:
        self.recorded.add(key)
        r = self.finished.get(key.path[-1])
        md = ({"dbt_seconds": MetadataValue.float(round(r["seconds"], 3)), "status": r["status"]}
              if r else {"status": "unchanged (not run)"})
        return MaterializeResult(asset_key=key, metadata=md)

    def remaining(self, upstream: dict[AssetKey, set[AssetKey]]):
        """Every selected model not recorded yet, in dependency order (after a successful dbt)."""
        for key in graphlib.TopologicalSorter(upstream).static_order():
            if key not in self.recorded:
                yield self._result(key)


def _upstream(selected, deps) -> dict[AssetKey, set[AssetKey]]:
    """Each selected model and the selected models it depends on."""
    return {k: {d for d in deps.get(k, ()) if d in selected} for k in selected}


def _stream_materializations(stream: _DbtStream, upstream: dict[AssetKey, set[AssetKey]]):
    """Yield a model's materialization once dbt finished it successfully (or it is not run this
    build) and every selected model it depends on (``upstream``, see :func:`_upstream`) has been
    yielded: Dagster wants a multi-asset's outputs in dependency order. Models dbt fails or skips are
    never yielded; after a successful dbt, :meth:`_DbtStream.remaining` yields whatever is left."""
    upstream = dict(upstream)  # consumed below (its sets are only read)

    def ready() -> list[AssetKey]:
        out: list[AssetKey] = []
        progress = True
        while progress:
            progress = False
            for key in list(upstream):
                name = key.path[-1]
                done = name in stream.skipped or stream.finished.get(name, {}).get("status") == "success"
                if done and upstream[key] <= stream.recorded:
                    del upstream[key]
                    stream.recorded.add(key)
                    out.append(key)
                    progress = True
        return out

    for key in ready():
        yield stream._result(key)
    for name, status, seconds in stream.events():
        stream.finished[name] = {"status": status, "seconds": seconds}
        for key in ready():
            yield stream._result(key)


def _record_full_refresh_tests(home, *, passed: bool) -> None:
    """``dbt build --full-refresh`` ran every data test over every row (see warehouse/tested.py)."""
    tested.record(home, tests_fingerprint(), published_watermark(home), tested.WHOLE, passed=passed)


def _warehouse_relations(home) -> set[str]:
    """The tables and views of the warehouse's main schema."""
    if not home.warehouse.exists():
        return set()
    con = duckdb.connect(str(home.warehouse), config={"memory_limit": MEMORY_LIMIT})
    try:
        return {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal").fetchall()}
    finally:
        con.close()


@functools.cache
def build_assets() -> "tuple[AssetsDefinition, AssetsDefinition, AssetsDefinition]":
    """(raw tables, dbt models, published snapshot), the dbt part from the prepared manifest."""
    project = dbt_project()

    @dbt_assets(
        manifest=ensure_manifest(),
        project=project,
        dagster_dbt_translator=RegistryDbtTranslator(),
    )
    def registry_dbt_models(context: AssetExecutionContext, config: DbtBuildConfig, registry: RegistryHome):
        """``dbt build`` in this process (``orchestration/defs/dbt_inprocess.py``): seeds when they
        changed, models with enforced contracts. The per-case models are incremental: they recompute
        only the cases ingestion listed as pending. The data tests run right after publishing
        (check ``dbt_data_tests``); on ``--full-refresh`` they and dbt's unit tests run here."""
        home = registry.home()
        t0 = time.perf_counter()
        upstream = _upstream(context.selected_asset_keys, context.assets_def.asset_deps)
        emitted = 0
        with warehouse_lock(home):
            for line in kill_stale_children(home):  # a dbt subprocess of an older version of the registry
                context.log.warning(line)
            man = dbt_manifest(home)
            args, redo, skipped = dbt_build_args(home, config.full_refresh, man)
            for kind in redo:
                dbt_forget(home, kind)
            # dbt runs in a thread; each model's materialization is recorded as soon as dbt finishes
            # it (and everything it depends on has been recorded), so that Dagster's event writes
            # overlap dbt instead of following it (see _stream_materializations).
            stream = _DbtStream(home, args, skipped=skipped)
            try:
                for result in _stream_materializations(stream, upstream):
                    emitted += 1
                    yield result
            except BaseException:
                stream.cancel()  # an interrupted build: the nodes running finish, no other starts
                raise
            outcome = stream.outcome()
            if not outcome.success:
                if config.full_refresh:  # it ran every data test: the next test run tests every row
                    _record_full_refresh_tests(home, passed=False)
                raise Failure(description=f"dbt build failed:\n    {outcome.error}", metadata={"command": " ".join(args)})
            for kind in redo:
                dbt_mark_loaded(home, kind)
            cleared = clear_pending(home)  # reached only when dbt build succeeded
            if config.full_refresh:  # every data test passed, over every row (still under the lock)
                _record_full_refresh_tests(home, passed=True)
        for result in stream.remaining(upstream):
            yield result
        context.log.info(
            f"dbt {' '.join(args)} finished in {time.perf_counter() - t0:.2f}s "
            f"({len(outcome.results)} nodes, {cleared} pending cases; {emitted} materializations recorded while dbt ran)"
        )

    @asset(
        key=AssetKey("published_snapshot"),
        deps=list(registry_dbt_models.keys),
        group_name="published",
        description=(
            "The consistent snapshot readers use: published/current -> versions/<id>/ with a DuckDB file, "
            "Parquet files and the data dictionary; switched atomically."
        ),
    )
    def published_snapshot(context: AssetExecutionContext, config: PublishConfig, registry: RegistryHome) -> MaterializeResult:
        home = registry.home()
        with warehouse_lock(home):
            res = publish(home, manifest_path=home.dbt_dir / "target" / "manifest.json", leave_parquet=config.leave_parquet)
        context.log.info(f"published {res.version} in {res.seconds:.2f}s"
                         + (" (its Parquet set is left to the warm builder's next idle moment)" if res.parquet_deferred else ""))
        return MaterializeResult(
            metadata={
                "version": res.version,
                "path": MetadataValue.path(str(res.path)),
                "seconds": MetadataValue.float(round(res.seconds, 3)),
                "cases": res.tables.get("dim_cases", 0),
                "parquet_deferred": res.parquet_deferred,
                "tables": MetadataValue.json(res.tables),
            }
        )

    return raw_tables, registry_dbt_models, published_snapshot
